use super::*;

#[test]
fn lines_devenv_writes_pass_its_own_checks() {
    let mut file = parse("");
    file.set_block(
        "shop",
        501,
        &[
            linux_line("/home/ann/src/shop"),
            linux_line("/home/ann/my lib#2"),
            export_line(
                LINUX,
                Path::new("/srv/x"),
                ExportClient::Subnet {
                    network: Ipv4Addr::new(192, 168, 39, 0),
                    prefix: 24,
                },
                ME,
            ),
        ],
    );
    assert_eq!(file.check(), vec![]);
    let mut mac = ExportsFile::parse("", MACOS).unwrap();
    mac.set_block(
        "shop",
        501,
        &[
            mac_line("/System/Volumes/Data/Users/ann/shop"),
            export_line(
                MACOS,
                Path::new("/System/Volumes/Data/Users/ann/lib"),
                ExportClient::Subnet {
                    network: Ipv4Addr::new(192, 168, 64, 0),
                    prefix: 24,
                },
                ME,
            ),
        ],
    );
    assert_eq!(mac.check(), vec![]);
}

#[test]
fn unknown_option_keywords_are_reported_like_exportfs() {
    assert_eq!(
        problems("# c\n/srv/a 10.0.0.1(rw,bogusopt)\n", LINUX),
        vec!["line 2: unknown keyword \"bogusopt\""]
    );
    assert_eq!(
        problems("/srv/a 10.0.0.1(rw,,async)\n", LINUX),
        vec!["line 1: unknown keyword \"\""]
    );
}

#[test]
fn bad_option_values_are_reported() {
    for (options, message) in [
        ("anonuid=abc", "bad anonuid \"anonuid=abc\""),
        ("anongid=", "bad anongid \"anongid=\""),
        ("fsid=08", "bad fsid \"fsid=08\""),
        ("sec=sys:", "unknown flavor "),
        ("squash_uids=-1", "syntax error: uid/gid -1 not permitted"),
        ("squash_gids=1x", "syntax error: bad uid/gid list"),
    ] {
        assert_eq!(
            problems(&format!("/srv/a 10.0.0.1({options})\n"), LINUX),
            vec![format!("line 1: {message}")],
            "{options}"
        );
    }
}

#[test]
fn option_values_exportfs_accepts_pass() {
    for options in [
        "rw,",
        "",
        "anonuid=-1,anongid=+5",
        "fsid=0x1f",
        "fsid=0777",
        "fsid=root",
        "fsid=12345678-1234-1234-1234-123456789abc",
        "sec=krb5p:sys,rw",
        "squash_uids=0-10",
        "squash_uids=",
        "mp,mountpoint=/x,refer=/a@b,replicas=/c@d",
    ] {
        assert_eq!(
            problems(&format!("/srv/a 10.0.0.1({options})\n"), LINUX),
            Vec::<String>::new(),
            "{options}"
        );
    }
}

#[test]
fn broken_option_lists_and_subnets_are_reported() {
    for (client, message) in [
        ("10.0.0.1(rw", "syntax error: bad option list"),
        ("10.0.0.1(rw)x", "syntax error: bad option list"),
        ("10.0.0.1/33(rw)", "Invalid prefix `33' for 10.0.0.1/33"),
        ("10.0.0.1/-1(rw)", "Invalid prefix `-1' for 10.0.0.1/-1"),
        ("10.0.0/8(rw)", "Invalid IP address 10.0.0/8"),
        ("010.0.0.1/8(rw)", "Invalid IP address 010.0.0.1/8"),
        (
            "10.0.0.1/1.2.3(rw)",
            "Invalid netmask `1.2.3' for 10.0.0.1/1.2.3",
        ),
    ] {
        assert_eq!(
            problems(&format!("/srv/a {client}\n"), LINUX),
            vec![format!("line 1: {message}")],
            "{client}"
        );
    }
}

#[test]
fn clients_exportfs_accepts_pass() {
    for client in [
        "*(ro)",
        "(rw)",
        "",
        "@netgroup(rw)",
        "*.example.com(rw)",
        "gss/krb5(rw)",
        "10.0.0.0/255.0.0.0(rw)",
        "10.0.0.1/(rw)",
        "10.0.0.1/+8(rw)",
        "fe80::/10(rw)",
        "fe80::/ffc0::(rw)",
        "-rw,no_subtree_check 10.0.0.1",
    ] {
        assert_eq!(
            problems(&format!("/srv/a {client}\n"), LINUX),
            Vec::<String>::new(),
            "{client}"
        );
    }
}

#[test]
fn a_relative_path_and_an_unterminated_quote_are_reported() {
    assert_eq!(
        problems("srv/a 10.0.0.1(rw)\n", LINUX),
        vec!["line 1: export path srv/a is not absolute"]
    );
    let quote = problems("\"/srv/a 10.0.0.1(rw)\n", LINUX);
    assert!(
        quote[0].starts_with("line 1: unterminated quote"),
        "{quote:?}"
    );
}

#[test]
fn macos_style_options_are_unknown_keywords_for_linux() {
    assert_eq!(
        problems("/srv/a -alldirs -mapall=501:20 10.0.0.1\n", LINUX),
        vec!["line 1: unknown keyword \"alldirs\""]
    );
}

#[test]
fn the_same_directory_exported_twice_to_one_client_is_reported() {
    assert_eq!(
        problems("/srv/a 10.0.0.1(rw)\n/srv/a/ 10.0.0.1(ro)\n", LINUX),
        vec![
            "line 2: /srv/a is exported to 10.0.0.1 again (first on line 1): exportfs rejects duplicated export entries"
        ]
    );
}

#[test]
fn a_crlf_blank_line_is_reported_because_exportfs_stops_reading_there() {
    let text = "/srv/a 10.0.0.1(rw)\r\n\r\n/srv/b 10.0.0.1(rw)\r\n";
    assert_eq!(
        problems(text, LINUX),
        vec![
            "line 2: this line starts with a carriage return (a blank line with a CRLF ending?), so exportfs stops reading the file here and ignores the exports from line 3 on"
        ]
    );
    assert_eq!(
        problems("/srv/a 10.0.0.1(rw)\r\n\r\n", LINUX),
        Vec::<String>::new()
    );
}

#[test]
fn a_foreign_problem_that_keeps_exportfs_from_reading_devenvs_block_affects_the_block() {
    let mut file = parse("/srv/a 10.0.0.1(rw)\r\n\r\n# hand edit\r\n");
    file.set_block("shop", 501, &[linux_line("/srv/shop")]);
    let problems = file.check();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].line, 2);
    assert!(!problems[0].in_devenv_block("shop", 501));
    assert!(problems[0].affects("shop", 501));
    assert!(!problems[0].affects("blog", 501));

    let mut file = parse("/srv/a 10.0.0.1(rw,bogus)\n");
    file.set_block("shop", 501, &[linux_line("/srv/shop")]);
    assert!(
        file.check()[0].affects("shop", 501),
        "exportfs stops at the bad option"
    );

    let mut file = parse("\"/srv/a 10.0.0.1(rw)\n");
    file.set_block("shop", 501, &[linux_line("/srv/shop")]);
    assert!(
        file.check()[0].affects("shop", 501),
        "the open quote runs into the block"
    );

    let mut file = parse("/srv/a 10.0.0.1/33(rw)\n");
    file.set_block("shop", 501, &[linux_line("/srv/shop")]);
    assert!(
        !file.check()[0].affects("shop", 501),
        "exportfs reads on after a bad client"
    );
}

#[test]
fn a_continuation_before_crlf_is_no_continuation_for_exportfs() {
    let found = problems("/srv/a \\\r\n  10.0.0.1(rw)\r\n", LINUX);
    assert_eq!(
        found,
        vec![
            "line 1: a backslash before a CRLF line ending does not continue the line for exportfs: use LF line endings or join the lines",
            "line 2: export path 10.0.0.1(rw) is not absolute"
        ]
    );
}

#[test]
fn devenv_lines_must_not_export_to_everyone_or_a_public_network() {
    let block =
        |line: &str| format!("# BEGIN devenv shop uid=501\n{line}\n# END devenv shop uid=501\n");
    for line in [
        "/srv/a *(rw)",
        "/srv/a (rw)",
        "/srv/a",
        "/srv/a -rw",
        "/srv/a 8.8.8.0/24(rw)",
        "/srv/a 10.0.0.0/7(rw)",
        "/srv/a example.com(rw)",
        "/srv/a 192.168.0.0/0.0.0.0(rw)",
    ] {
        let found = problems(&block(line), LINUX);
        assert_eq!(found.len(), 1, "{line}: {found:?}");
    }
    assert_eq!(
        problems("/srv/a *(rw)\n", LINUX),
        Vec::<String>::new(),
        "foreign lines keep their scope"
    );
}

#[test]
fn devenv_macos_lines_are_checked_for_options_and_scope() {
    let block =
        |line: &str| format!("# BEGIN devenv shop uid=501\n{line}\n# END devenv shop uid=501\n");
    for (line, expected) in [
        ("/a -alldirs", "no host or -network"),
        ("/a -bogus 192.168.64.2", "unknown option -bogus"),
        ("/a -mapall= 192.168.64.2", "option -mapall= needs a value"),
        (
            "/a -network 8.8.8.0 -mask 255.255.255.0",
            "not inside the private ranges",
        ),
        ("/a -network 192.168.64.0", "needs -mask"),
        ("/a 192.168.64.2 -mask 255.0.0.0", "-mask without -network"),
        ("relative 192.168.64.2", "not absolute"),
    ] {
        let found = problems(&block(line), MACOS);
        assert_eq!(found.len(), 1, "{line}: {found:?}");
        assert!(found[0].contains(expected), "{line}: {found:?}");
    }
    assert_eq!(
        problems(
            &block("/a -alldirs -network=192.168.64.0 -mask=255.255.255.0"),
            MACOS
        ),
        Vec::<String>::new()
    );
}

#[test]
fn a_macos_continuation_into_a_comment_is_reported() {
    let found = problems("/a 192.168.64.2 \\\n# note\n", MACOS);
    assert!(
        found[0].contains("reads the comment on line 2"),
        "{found:?}"
    );
    let found = problems("# note \\\n/a 192.168.64.2\n", MACOS);
    assert!(found[0].contains("also ignores line 2"), "{found:?}");
}

#[test]
fn a_foreign_macos_continuation_into_devenvs_block_is_reported() {
    let mut file = ExportsFile::parse("/a \\\n", MACOS).unwrap();
    file.set_block("shop", 501, &[mac_line("/b")]);
    let found = file.check();
    let joined = found
        .iter()
        .find(|p| p.message.contains("joins this line"))
        .expect("the join is reported");
    assert_eq!(joined.block, None);
    assert!(joined.affects("shop", 501));
}

#[test]
fn escape_path_round_trips_through_the_linux_reader_for_every_byte() {
    let all: String = (1u8..=0x7f)
        .map(char::from)
        .filter(|&c| c != '\n')
        .collect();
    let path = format!("/x{all}é");
    let text = format!("{} 10.0.0.1(rw)\n", escape_path(&path));
    let entries = parse(&text).entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].path, Path::new(&path));
    assert_eq!(problems(&text, LINUX), Vec::<String>::new());
}
