#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| combo_webhook_filter::fuzzing::multipart(data));
