//! Any bytes must decode as a snapshot or be refused; never a panic, and
//! never an allocation the input does not pay for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = driftwatch::state::decode(std::path::Path::new("fuzz"), data);
});
