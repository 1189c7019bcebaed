//! Fuzzes the exports helper's request parser, the first thing root reads from an untrusted
//! caller: parsing arbitrary bytes never panics; a request that parses is within the size limit,
//! renders back to exactly the bytes read (one spelling per request, so nothing is smuggled in a
//! second form), and a `set` never names a relative path, `..`, a quote, a control character
//! or a wildcard client.

#![no_main]

use devenv::nfs::helper::{MAX_REQUEST, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Request::parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_REQUEST);
    assert_eq!(request.render().as_bytes(), data, "one spelling per request");
    if let Request::Set { project, grant } = &request {
        let dir = grant.dir.to_string_lossy();
        assert!(dir.starts_with('/'));
        assert!(!dir.split('/').any(|c| c == ".." || c == "."));
        assert!(!dir.contains(['"', '\\']) && !dir.chars().any(char::is_control));
        assert!(project.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        assert_ne!(grant.client.to_string(), "*");
    }
});
