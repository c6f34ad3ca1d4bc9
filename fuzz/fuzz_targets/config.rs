//! Any text must load as a configuration or be refused with located
//! problems; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(errors) = driftwatch::config::parse_str(text, "fuzz.yml") {
        assert!(!errors.problems.is_empty(), "refused without a problem");
    }
});
