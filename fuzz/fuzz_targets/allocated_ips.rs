#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spiderpool_fuzz::allocated_ips(data));
