use super::*;
use std::net::Ipv4Addr;

fn set(dir: &str, client: &str) -> String {
    format!("{PROTOCOL}\naction set\nproject shop\ndir {dir}\nclient {client}\naccess rw\n")
}

#[test]
fn a_rendered_request_parses_back_to_itself() {
    for request in [
        Request::Check,
        Request::Remove {
            project: "shop".into(),
        },
        Request::Set {
            project: "shop-2".into(),
            grant: Grant {
                dir: "/home/ann/My Projects/shop".into(),
                client: ExportClient::Address(Ipv4Addr::new(192, 168, 39, 15)),
                access: Access::ReadOnly,
            },
        },
    ] {
        assert_eq!(Request::parse(request.render().as_bytes()), Ok(request));
    }
}

#[test]
fn fields_come_in_order_once_each_and_nothing_follows() {
    let good = set("/home/ann/shop", "192.168.39.15");
    assert!(Request::parse(good.as_bytes()).is_ok());
    for bad in [
        good.replace("access rw\n", ""),
        good.replace("project shop\ndir", "dir"),
        format!("{good}access rw\n"),
        format!("{good}uid 0\n"),
        good.trim_end().to_string(),
        good.replace('\n', "\r\n"),
        good.replace(PROTOCOL, "devenv-exports-helper 2"),
        good.replace("action set", "action write"),
        good.replace("access rw", "access rw,no_root_squash"),
        good.replace("project shop", "project"),
    ] {
        assert!(
            matches!(Request::parse(bad.as_bytes()), Err(Refusal::Malformed(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn directories_must_be_plain_absolute_paths() {
    for bad in [
        "shop",
        "/home/ann/../../etc",
        "/home/ann/./shop",
        "/home//ann",
        "/home/ann/",
        "/home/a\"nn",
        "/home/a\\nn",
    ] {
        assert!(
            matches!(
                Request::parse(set(bad, "192.168.39.15").as_bytes()),
                Err(Refusal::Dir { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn clients_are_one_private_host_or_a_narrow_private_subnet() {
    assert!(Request::parse(set("/home/ann/shop", "192.168.39.0/24").as_bytes()).is_ok());
    for bad in [
        "*",
        "0.0.0.0/0",
        "8.8.8.8",
        "192.168.0.0/16",
        "10.0.0.0/8",
        "vm.local",
        "192.168.39.15 *(rw)",
    ] {
        assert!(
            matches!(
                Request::parse(set("/home/ann/shop", bad).as_bytes()),
                Err(Refusal::Client { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn an_oversized_request_is_refused_unread() {
    let big = format!(
        "{}{}",
        set("/home/ann/shop", "192.168.39.15"),
        "x".repeat(MAX_REQUEST)
    );
    assert_eq!(Request::parse(big.as_bytes()), Err(Refusal::TooLarge));
}

#[test]
fn only_root_reached_through_sudo_acts_for_a_user() {
    let uid = OsString::from("1000");
    let gid = OsString::from("1000");
    assert!(Invoker::from_sudo(Some(&uid), Some(&gid), 0, 0).is_ok());
    assert!(Invoker::from_sudo(Some(&uid), Some(&gid), 1000, 0).is_err());
    assert!(Invoker::from_sudo(None, Some(&gid), 0, 0).is_err());
    assert!(Invoker::from_sudo(Some(&OsString::from("0")), Some(&gid), 0, 0).is_err());
    assert!(Invoker::from_sudo(Some(&OsString::from("-1")), Some(&gid), 0, 0).is_err());
}

#[test]
fn the_reply_line_round_trips() {
    for reply in [
        Reply::Checked,
        Reply::Done(Outcome::Unchanged),
        Reply::Done(Outcome::Reloaded),
        Reply::Done(Outcome::Changed { backup: None }),
        Reply::Done(Outcome::Changed {
            backup: Some("/etc/exports.devenv.bak".into()),
        }),
    ] {
        assert_eq!(Reply::parse(&format!("{}\n", reply.line())), Some(reply));
    }
    assert_eq!(Reply::parse(""), None);
}

#[test]
fn the_helpers_stderr_splits_into_message_and_help() {
    let (m, h) =
        failure("devenv-exports-helper: refused: directory \"/\": no\nhelp: nothing was changed\n");
    assert_eq!(m, "refused: directory \"/\": no");
    assert_eq!(h.as_deref(), Some("nothing was changed"));
}
