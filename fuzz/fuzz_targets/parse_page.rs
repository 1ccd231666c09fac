//! Any bytes: the page parser returns a page or a shape error, never panics,
//! and a page it returns accounts for every row it counted.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = poomgo_notifier::poomgo::parse_page(data) {
        assert!(page.rows.len() <= page.raw_rows);
    }
});
