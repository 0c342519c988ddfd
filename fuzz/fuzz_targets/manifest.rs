//! Arbitrary bytes as a manifest: an error naming the file, or a manifest; never a panic,
//! never a hang.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(error) = portgate_policy::Manifest::from_bytes(data, "fuzz.yaml") {
        assert!(error.to_string().starts_with("fuzz.yaml"));
    }
});
