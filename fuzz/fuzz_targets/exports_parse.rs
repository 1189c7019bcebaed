//! Fuzzes the exports file reader and editor with arbitrary bytes, for both dialects: reading
//! never panics; a file that reads renders back byte for byte; entries, conflicts and checks
//! never panic; adding a block and removing it again gives back the same bytes, and setting the
//! same block twice changes nothing the second time.

#![no_main]

use std::path::Path;

use devenv::nfs::file::ExportsFile;
use devenv_drivers::ExportsDialect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for dialect in [ExportsDialect::Linux, ExportsDialect::MacOs] {
        let Ok(file) = ExportsFile::parse_bytes(data, dialect) else {
            continue;
        };
        assert_eq!(file.to_bytes(), data, "reading alone changes nothing");
        let _ = file.check();
        for entry in file.entries() {
            let _ = file.conflicts(&entry.path, "fuzz", 4242);
        }
        let _ = file.conflicts(Path::new("/srv/fuzz"), "fuzz", 4242);

        let lines = vec![
            "\"/srv/fuzz\" 192.168.39.12(rw,async,no_subtree_check)".to_string(),
            "\"/srv/fuzz two\" 192.168.39.12(rw,async,no_subtree_check)".to_string(),
        ];
        let mut edited = file.clone();
        let existed = edited.block_lines("fuzz", 4242).is_some();
        edited.set_block("fuzz", 4242, &lines);
        let once = edited.to_bytes();
        let mut reread = ExportsFile::parse_bytes(&once, dialect).expect("devenv's output reads");
        assert!(
            !reread.set_block("fuzz", 4242, &lines),
            "a second set changes nothing"
        );
        assert_eq!(reread.to_bytes(), once);
        let _ = reread.check();
        if !existed {
            assert!(reread.remove_block("fuzz", 4242));
            assert_eq!(
                reread.to_bytes(),
                data,
                "removing the added block restores the input"
            );
        }
    }
});
