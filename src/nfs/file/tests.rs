//! The exports file's reading and editing, as specifications: foreign bytes kept exactly,
//! blocks added, updated and removed in place, and what exportfs and mountd would refuse.

use super::*;
use crate::nfs::{Owner, escape_path, export_line};
use devenv_drivers::ExportClient;

const LINUX: ExportsDialect = ExportsDialect::Linux;
const MACOS: ExportsDialect = ExportsDialect::MacOs;
const ME: Owner = Owner { uid: 501, gid: 20 };

fn linux_line(path: &str) -> String {
    export_line(
        LINUX,
        Path::new(path),
        ExportClient::Address(Ipv4Addr::new(192, 168, 39, 12)),
        ME,
    )
}

fn mac_line(path: &str) -> String {
    export_line(
        MACOS,
        Path::new(path),
        ExportClient::Address(Ipv4Addr::new(192, 168, 64, 2)),
        ME,
    )
}

fn parse(text: &str) -> ExportsFile {
    ExportsFile::parse(text, LINUX).expect("parses")
}

fn set(text: &str, project: &str, lines: &[String]) -> String {
    let mut file = parse(text);
    file.set_block(project, 501, lines);
    file.render()
}

fn problems(text: &str, dialect: ExportsDialect) -> Vec<String> {
    ExportsFile::parse(text, dialect)
        .unwrap()
        .check()
        .iter()
        .map(ToString::to_string)
        .collect()
}

const FOREIGN: &[&str] = &[
    "",
    "\n",
    "# only a comment",
    "/srv/a 10.0.0.1(rw)\n",
    "/srv/a 10.0.0.1(rw)",
    "# c\r\n/srv/a 10.0.0.1(rw)\r\n",
    "# c\r\n/srv/a 10.0.0.1(rw)",
    "/srv/a \\\n  10.0.0.1(rw)\n\n\n",
    "# VAGRANT-BEGIN: 501 abc\n\"/Users/x\" 192.168.56.10(rw)\n# VAGRANT-END: 501 abc\n",
    "ends with cr\r",
    "mixed\r\nendings\nhere\r\n",
    "# BEGIN devenv shop\n# END devenv shop uid=x\n",
];

#[test]
fn foreign_content_is_rendered_back_byte_for_byte() {
    for text in FOREIGN {
        assert_eq!(parse(text).render(), *text);
        assert!(parse(text).blocks().is_empty(), "{text:?}");
    }
}

#[test]
fn bytes_that_are_not_utf8_survive_parse_and_edit() {
    let bytes = b"# caf\xe9\n/srv/\xff 10.0.0.1(rw)\n";
    let mut file = ExportsFile::parse_bytes(bytes, LINUX).unwrap();
    assert_eq!(file.to_bytes(), bytes);
    file.set_block("shop", 501, &[linux_line("/srv/shop")]);
    file.remove_block("shop", 501);
    assert_eq!(file.to_bytes(), bytes);
    assert_eq!(
        file.entries()[0].path,
        path_from(b"/srv/\xff"),
        "the undecodable path is kept as bytes"
    );
}

#[test]
fn every_line_devenv_writes_is_recognised_as_its_own() {
    use crate::nfs::{Access, Owner, export_line_with};
    let owner = Owner { uid: 501, gid: 20 };
    let clients = [
        ExportClient::Address("192.168.49.2".parse().unwrap()),
        ExportClient::Subnet {
            network: "192.168.49.0".parse().unwrap(),
            prefix: 24,
        },
    ];
    for dialect in [LINUX, ExportsDialect::MacOs] {
        for path in ["/srv/shop", "/home/a b/\"q\" #1", "/Users/x/caf\u{e9}"] {
            for client in clients {
                for access in [Access::ReadWrite, Access::ReadOnly] {
                    let line = export_line_with(dialect, Path::new(path), client, owner, access);
                    assert!(written_by_devenv(dialect, line.as_bytes()), "{line}");
                }
            }
        }
    }
    for foreign in [
        "",
        "# my note",
        "/srv/other 10.0.0.5(rw)",
        "\"/srv/shop\" 10.0.0.5(rw,no_root_squash)",
        "\"/srv/shop\" 10.0.0.5(rw,async,no_subtree_check,all_squash,anonuid=1,anongid=2) 10.0.0.6(rw)",
    ] {
        assert!(!written_by_devenv(LINUX, foreign.as_bytes()), "{foreign}");
    }
    assert!(!written_by_devenv(
        ExportsDialect::MacOs,
        b"\"/Users/x\" -alldirs -maproot=root 10.0.0.5"
    ));
    assert!(written_by_devenv(
        ExportsDialect::MacOs,
        b"\"/a\" \"/b\" -alldirs -mapall=501:20 192.168.64.2"
    ));
}

#[test]
fn lines_someone_added_inside_a_block_are_kept_out_of_it() {
    let ours = linux_line("/srv/shop");
    let text = format!(
        "/a 10.0.0.1(ro)\n# BEGIN devenv shop uid=501\n{ours}\n# mine\n/srv/x 10.0.0.9(rw)\n# END devenv shop uid=501\n/b 10.0.0.2(ro)\n"
    );
    let file = parse(&text);
    assert_eq!(
        file.foreign_in_block("shop", 501),
        vec![
            (4, "# mine".to_string()),
            (5, "/srv/x 10.0.0.9(rw)".to_string())
        ]
    );

    let mut updated = file.clone();
    assert!(updated.set_block("shop", 501, &[linux_line("/srv/shop2")]));
    assert_eq!(
        updated.render(),
        format!(
            "/a 10.0.0.1(ro)\n# BEGIN devenv shop uid=501\n{}\n# END devenv shop uid=501\n# mine\n/srv/x 10.0.0.9(rw)\n/b 10.0.0.2(ro)\n",
            linux_line("/srv/shop2")
        )
    );
    assert!(updated.foreign_in_block("shop", 501).is_empty());

    let mut removed = file.clone();
    assert!(removed.remove_block("shop", 501));
    assert_eq!(
        removed.render(),
        "/a 10.0.0.1(ro)\n# mine\n/srv/x 10.0.0.9(rw)\n/b 10.0.0.2(ro)\n"
    );
}

#[test]
fn adding_then_removing_a_block_gives_back_the_exact_foreign_text() {
    for text in FOREIGN {
        let mut file = parse(text);
        assert!(file.set_block("shop", 501, &[linux_line("/srv/shop")]));
        let added = file.render();
        let mut reread = parse(&added);
        assert!(reread.remove_block("shop", 501));
        assert_eq!(reread.render(), *text, "after adding: {added:?}");
    }
}

#[test]
fn a_new_block_is_appended_with_a_trailing_newline() {
    assert_eq!(
        set("/srv/a 10.0.0.1(rw)\n", "shop", &["L".into()]),
        "/srv/a 10.0.0.1(rw)\n# BEGIN devenv shop uid=501\nL\n# END devenv shop uid=501\n"
    );
}

#[test]
fn a_new_block_in_a_crlf_file_uses_crlf() {
    assert_eq!(
        set("# c\r\n", "shop", &["L".into()]),
        "# c\r\n# BEGIN devenv shop uid=501\r\nL\r\n# END devenv shop uid=501\r\n"
    );
}

#[test]
fn without_a_final_newline_the_block_brings_the_newline_before_it_and_none_after() {
    assert_eq!(
        set("/srv/a 10.0.0.1(rw)", "shop", &["L".into()]),
        "/srv/a 10.0.0.1(rw)\n# BEGIN devenv shop uid=501\nL\n# END devenv shop uid=501"
    );
    assert_eq!(
        set("# c\r\n# d", "shop", &["L".into()]),
        "# c\r\n# d\r\n# BEGIN devenv shop uid=501\r\nL\r\n# END devenv shop uid=501"
    );
}

#[test]
fn an_existing_block_is_updated_in_place() {
    let (old, new1, new2) = (linux_line("/old"), linux_line("/new1"), linux_line("/new2"));
    let text = format!("# a\n# BEGIN devenv shop uid=501\n{old}\n# END devenv shop uid=501\n# z\n");
    let mut file = parse(&text);
    assert!(file.set_block("shop", 501, &[new1.clone(), new2.clone()]));
    assert_eq!(
        file.render(),
        format!(
            "# a\n# BEGIN devenv shop uid=501\n{new1}\n{new2}\n# END devenv shop uid=501\n# z\n"
        )
    );
    assert_eq!(file.block_lines("shop", 501).unwrap(), vec![new1, new2]);
}

#[test]
fn setting_the_same_lines_again_changes_nothing() {
    let mut file = parse("# a");
    assert!(file.set_block("shop", 501, &["L".into()]));
    let once = file.render();
    assert!(!file.set_block("shop", 501, &["L".into()]));
    assert_eq!(file.render(), once);
    let mut reread = parse(&once);
    assert!(!reread.set_block("shop", 501, &["L".into()]));
    assert_eq!(reread.render(), once);
}

#[test]
fn an_updated_block_keeps_its_own_line_ending() {
    let (old, new) = (linux_line("/old"), linux_line("/new"));
    let text = format!(
        "# lf first\n# BEGIN devenv shop uid=501\r\n{old}\r\n# END devenv shop uid=501\r\n"
    );
    let mut file = parse(&text);
    file.set_block("shop", 501, std::slice::from_ref(&new));
    assert_eq!(
        file.render(),
        format!(
            "# lf first\n# BEGIN devenv shop uid=501\r\n{new}\r\n# END devenv shop uid=501\r\n"
        )
    );
}

#[test]
fn blocks_of_other_projects_and_users_are_left_alone() {
    let mut file = parse("# x\n");
    file.set_block("shop", 501, &["a".into()]);
    file.set_block("shop", 502, &["b".into()]);
    file.set_block("blog", 501, &["c".into()]);
    assert_eq!(
        file.blocks(),
        vec![
            BlockKey::new("shop", 501),
            BlockKey::new("shop", 502),
            BlockKey::new("blog", 501)
        ]
    );
    assert!(file.remove_block("shop", 501));
    assert_eq!(file.block_lines("shop", 502).unwrap(), vec!["b"]);
    assert_eq!(file.block_lines("blog", 501).unwrap(), vec!["c"]);
    assert_eq!(file.block_lines("shop", 501), None);
}

#[test]
fn removing_blocks_in_any_order_restores_a_file_without_final_newline() {
    for order in [["a", "b", "c"], ["c", "b", "a"], ["b", "c", "a"]] {
        let mut file = parse("# end\r\n# no newline");
        for project in ["a", "b", "c"] {
            file.set_block(project, 1, &[linux_line(&format!("/{project}"))]);
        }
        let mut file = parse(&file.render());
        for project in order {
            assert!(file.remove_block(project, 1));
            file = parse(&file.render());
        }
        assert_eq!(file.render(), "# end\r\n# no newline");
    }
}

#[test]
fn blocks_chained_after_a_line_ending_in_a_lone_cr_give_that_cr_back() {
    let mut file = parse(" \r");
    file.set_block("shop", 1, &[]);
    let mut file = parse(&file.render());
    file.set_block("blog", 1, &[]);
    assert_eq!(
        file.render(),
        " \r\n# BEGIN devenv shop uid=1\n# END devenv shop uid=1\n# BEGIN devenv blog uid=1\n# END devenv blog uid=1"
    );
    let mut file = parse(&file.render());
    file.remove_block("shop", 1);
    file.remove_block("blog", 1);
    assert_eq!(file.render(), " \r");
}

#[test]
fn removing_a_missing_block_changes_nothing() {
    let mut file = parse("# a\n");
    assert!(!file.remove_block("shop", 501));
    assert_eq!(file.render(), "# a\n");
}

#[test]
fn block_lines_are_those_between_the_markers_without_line_endings() {
    let file = parse("# BEGIN devenv shop uid=7\r\n\"/a\" h(rw)\r\n# END devenv shop uid=7\r\n");
    assert_eq!(file.block_lines("shop", 7).unwrap(), vec!["\"/a\" h(rw)"]);
    assert_eq!(file.block_lines("shop", 8), None);
}

#[test]
fn a_begin_without_end_is_an_error_naming_its_line() {
    let err = ExportsFile::parse("# a\n# BEGIN devenv shop uid=501\nx\n", LINUX).unwrap_err();
    assert_eq!(
        err,
        FileError::Unterminated {
            line: 2,
            key: BlockKey::new("shop", 501)
        }
    );
    assert_eq!(err.line(), Some(2));
    assert_eq!(
        err.to_string(),
        "line 2: devenv's block for project shop (uid 501) has no end marker `# END devenv shop uid=501`"
    );
}

#[test]
fn an_end_without_begin_is_an_error() {
    let err = ExportsFile::parse("# END devenv shop uid=501\n", LINUX).unwrap_err();
    assert_eq!(err.line(), Some(1));
    assert!(matches!(err, FileError::StrayEnd { .. }));
}

#[test]
fn a_block_inside_another_is_an_error() {
    let text = "# BEGIN devenv shop uid=1\n# BEGIN devenv blog uid=1\n# END devenv blog uid=1\n# END devenv shop uid=1\n";
    let err = ExportsFile::parse(text, LINUX).unwrap_err();
    assert_eq!(
        err,
        FileError::Nested {
            line: 2,
            key: BlockKey::new("blog", 1),
            outer: BlockKey::new("shop", 1),
            outer_line: 1
        }
    );
}

#[test]
fn an_end_marker_of_another_block_is_an_error() {
    let text = "# BEGIN devenv shop uid=1\n# END devenv blog uid=1\n";
    assert!(matches!(
        ExportsFile::parse(text, LINUX).unwrap_err(),
        FileError::MismatchedEnd { line: 2, .. }
    ));
}

#[test]
fn two_blocks_for_the_same_project_and_user_are_an_error() {
    let text = "# BEGIN devenv shop uid=1\n# END devenv shop uid=1\n# x\n# BEGIN devenv shop uid=1\n# END devenv shop uid=1\n";
    assert_eq!(
        ExportsFile::parse(text, LINUX).unwrap_err(),
        FileError::Duplicate {
            line: 4,
            key: BlockKey::new("shop", 1),
            first_line: 1
        }
    );
}

#[test]
fn marker_lookalikes_are_foreign_comments() {
    for text in [
        "# BEGIN devenv shop\n",
        "# BEGIN devenv shop uid=x\n",
        "# BEGIN devenv shop uid=+1\n",
        "# BEGIN devenv shop uid=01\n",
        "#BEGIN devenv shop uid=1\n",
        " # BEGIN devenv shop uid=1\n",
        "# BEGIN devenv  shop uid=1\n",
        "# END devenv a b uid=1\n",
        "# BEGIN: minikube-hyperkit\n",
    ] {
        let file = parse(text);
        assert!(file.blocks().is_empty(), "{text:?}");
        assert_eq!(file.render(), text);
    }
}

#[test]
fn markers_with_trailing_blanks_or_cr_still_count() {
    let file = parse("# BEGIN devenv shop uid=1  \n# END devenv shop uid=1\t\r\n");
    assert_eq!(file.blocks(), vec![BlockKey::new("shop", 1)]);
}

#[test]
fn set_block_refuses_names_and_lines_that_would_not_read_back() {
    let mut file = parse("");
    for project in ["", "my shop", "a\tb", "x\ny"] {
        assert!(matches!(
            file.try_set_block(project, 1, &[]),
            Err(FileError::InvalidProject { .. })
        ));
    }
    for line in [
        "a\nb",
        "a\r",
        "# END devenv shop uid=1",
        "# BEGIN devenv x uid=2",
    ] {
        assert!(matches!(
            file.try_set_block("shop", 1, &[line.to_string()]),
            Err(FileError::InvalidLine { .. })
        ));
    }
    assert_eq!(file.render(), "");
}

#[test]
fn entries_list_every_export_with_line_path_rest_and_block() {
    let text = "# c\n/srv/a 10.0.0.1(rw) 10.0.0.2(ro)\n\n\"/srv/b c\" \\\n   *(ro)\n# BEGIN devenv shop uid=501\n\"/srv/shop\" 192.168.39.12(rw)\n# END devenv shop uid=501\n";
    let entries = parse(text).entries();
    assert_eq!(
        entries,
        vec![
            Entry {
                line: 2,
                path: "/srv/a".into(),
                rest: vec!["10.0.0.1(rw)".into(), "10.0.0.2(ro)".into()],
                block: None
            },
            Entry {
                line: 4,
                path: "/srv/b c".into(),
                rest: vec!["*(ro)".into()],
                block: None
            },
            Entry {
                line: 7,
                path: "/srv/shop".into(),
                rest: vec!["192.168.39.12(rw)".into()],
                block: Some(BlockKey::new("shop", 501))
            },
        ]
    );
}

#[test]
fn entries_decode_the_escapes_escape_path_writes() {
    for path in [
        "/a b",
        "/q\"uote",
        "/back\\slash",
        "/hash#tag",
        "/é",
        "/tab\there",
    ] {
        let text = format!("{}\n", linux_line(path));
        let entries = parse(&text).entries();
        assert_eq!(entries.len(), 1, "{text:?}");
        assert_eq!(entries[0].path, Path::new(path));
        let mac = format!("{}\n", mac_line(path));
        let entries = ExportsFile::parse(&mac, MACOS).unwrap().entries();
        assert_eq!(entries[0].path, Path::new(path));
    }
}

#[test]
fn linux_entries_follow_exportfs_comment_rules() {
    let text = "/srv/a#b h(rw) # trailing comment\n/srv/c \\\n# comment ends the entry\nh2(rw)\n";
    let entries = parse(text).entries();
    let got: Vec<(usize, &Path, Vec<String>)> = entries
        .iter()
        .map(|e| (e.line, e.path.as_path(), e.rest.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Path::new("/srv/a#b"), vec!["h(rw)".to_string()]),
            (2, Path::new("/srv/c"), vec![]),
            (4, Path::new("h2(rw)"), vec![]),
        ]
    );
}

#[test]
fn macos_entries_list_every_path_of_a_line() {
    let text = "\"/Users/a\" /Users/b -alldirs -mapall=501:20 192.168.64.2\n";
    let entries = ExportsFile::parse(text, MACOS).unwrap().entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].path, Path::new("/Users/b"));
    assert_eq!(entries[1].line, 1);
    assert_eq!(
        entries[1].rest,
        vec!["-alldirs", "-mapall=501:20", "192.168.64.2"]
    );
}

fn conflict_lines(text: &str, dialect: ExportsDialect, path: &str) -> Vec<(usize, Overlap)> {
    ExportsFile::parse(text, dialect)
        .unwrap()
        .conflicts(Path::new(path), "shop", 501)
        .into_iter()
        .map(|c| (c.line, c.overlap))
        .collect()
}

#[test]
fn a_foreign_export_of_the_same_parent_or_child_directory_conflicts() {
    let text = "/home/ann/src/shop/ h(rw)\n/home/ann/src h(rw)\n/home/ann/src/shop/web h(rw)\n/home/ann/src/shopping h(rw)\n/home/ann/src/sho h(rw)\n";
    assert_eq!(
        conflict_lines(text, LINUX, "/home/ann/src/shop"),
        vec![
            (1, Overlap::Same),
            (2, Overlap::Contains),
            (3, Overlap::Inside)
        ]
    );
}

#[test]
fn conflict_messages_say_what_the_line_does_and_what_to_do() {
    let file = parse("# x\n# y\n/home/ann/src h(rw)\n");
    let conflicts = file.conflicts(Path::new("/home/ann/src/shop"), "shop", 501);
    assert_eq!(
        conflicts[0].to_string(),
        "line 3 exports /home/ann/src, which contains /home/ann/src/shop: remove that line or export a different directory"
    );
}

#[test]
fn the_projects_own_block_is_no_conflict_but_other_devenv_blocks_are() {
    let text = "# BEGIN devenv shop uid=501\n/srv/shop h(rw)\n# END devenv shop uid=501\n# BEGIN devenv shop uid=502\n/srv/shop h(rw)\n# END devenv shop uid=502\n";
    let conflicts = parse(text).conflicts(Path::new("/srv/shop"), "shop", 501);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].line, 5);
    assert_eq!(conflicts[0].block, Some(BlockKey::new("shop", 502)));
    assert!(
        conflicts[0].message.contains("devenv down --purge"),
        "{}",
        conflicts[0]
    );
}

#[test]
fn on_macos_the_data_volume_spelling_is_the_same_directory() {
    let text = "/Users/ann -alldirs 192.168.64.2\n";
    assert_eq!(
        conflict_lines(text, MACOS, "/System/Volumes/Data/Users/ann/shop"),
        vec![(1, Overlap::Contains)]
    );
}

#[test]
fn conflicts_never_change_the_file() {
    let text = "/srv h(rw)\n";
    let file = parse(text);
    assert_eq!(file.conflicts(Path::new("/srv/x"), "shop", 501).len(), 1);
    assert_eq!(file.render(), text);
}

/// What the checks report: the server's rules for each dialect, and the scope rule.
mod checks;
