//! Any bytes, fed to the exposition parser in two chunks split at every
//! place the input's first byte picks, must parse or fail cleanly, and give
//! the same samples however they were split.
#![no_main]

use driftwatch::parse::ExpositionParser;
use libfuzzer_sys::fuzz_target;

fn samples(chunks: &[&[u8]]) -> Result<Vec<(String, u64)>, String> {
    let mut parser = ExpositionParser::new();
    let mut seen = Vec::new();
    let mut on_sample = |s: &driftwatch::parse::Sample<'_>| {
        seen.push((s.series.to_owned(), s.value.to_bits()));
    };
    for chunk in chunks {
        parser.feed(chunk, &mut on_sample).map_err(|e| e.to_string())?;
    }
    parser.finish(&mut on_sample).map_err(|e| e.to_string())?;
    Ok(seen)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    let at = usize::from(split).min(body.len());
    let whole = samples(&[body]);
    let split = samples(&[&body[..at], &body[at..]]);
    assert_eq!(whole, split, "splitting the body changed the result");
});
