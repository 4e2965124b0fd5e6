//! Any bytes as a capture file: the reader returns events or an error, never panics, and
//! never allocates more than a block's limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = hmmtrace::capture::Reader::new(data, "fuzz.hmt") {
        let _ = reader.for_each(|_| Ok(()));
    }
});
