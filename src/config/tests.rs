//! Parsing and the schema's documentation, checked.

mod parsing {
    use super::super::*;

    #[test]
    fn references_split_at_the_last_colon_after_the_last_slash() {
        assert_eq!(split_reference("shop-api:dev"), ("shop-api", "dev"));
        assert_eq!(split_reference("shop-api"), ("shop-api", "latest"));
        assert_eq!(
            split_reference("registry:5000/team/api:1.2"),
            ("registry:5000/team/api", "1.2")
        );
        assert_eq!(
            split_reference("registry:5000/team/api"),
            ("registry:5000/team/api", "latest")
        );
    }

    #[test]
    fn the_remote_server_pin_is_one_url_or_a_list() {
        let one =
            parse("[project]\nname = \"x\"\n[remote]\ncontext = \"c\"\nserver = \"https://a\"\n")
                .unwrap();
        assert_eq!(one.remote.unwrap().server, ["https://a"]);
        let many =
            parse("[project]\nname = \"x\"\n[remote]\ncontext = \"c\"\nserver = [\"https://a\", \"https://b\"]\n")
                .unwrap();
        assert_eq!(many.remote.unwrap().server, ["https://a", "https://b"]);
        let none = parse("[project]\nname = \"x\"\n[remote]\ncontext = \"c\"\n").unwrap();
        assert!(none.remote.unwrap().server.is_empty());
    }

    #[test]
    fn defaults_fill_everything_but_the_project_name() {
        let c = parse("[project]\nname = \"shop\"\n").unwrap();
        assert_eq!(c.vm, Vm::default());
        assert_eq!(c.vm.max_pods, 60);
        assert_eq!(c.mount.options, DEFAULT_MOUNT_OPTIONS);
        assert_eq!(c.project.namespace(), "shop");
        assert_eq!(c.project.profile(), "devenv-shop");
    }

    #[test]
    fn an_unknown_key_is_refused_with_a_suggestion() {
        let p = parse("[project]\nname = \"shop\"\n[vm]\ncpu = 4\n").unwrap_err();
        assert_eq!((p.line, p.column), (4, 1));
        assert_eq!(p.key, "vm.cpu");
        assert!(p.message.contains("unknown field `cpu`"), "{}", p.message);
        assert_eq!(p.help.as_deref(), Some("did you mean `cpus`?"));
    }

    #[test]
    fn a_missing_required_key_names_the_full_path() {
        let p = parse("[project]\nchart = \"c\"\n").unwrap_err();
        assert_eq!(p.key, "project.name");
    }

    #[test]
    fn a_misspelt_enum_value_suggests_the_right_one() {
        let p =
            parse("[project]\nname = \"s\"\n[services.api]\non_change = \"restat\"\n").unwrap_err();
        assert_eq!(p.key, "services.api.on_change");
        assert_eq!(p.line, 4);
        assert_eq!(p.help.as_deref(), Some("did you mean `restart`?"));
    }
}

mod docs_tests {
    use super::super::*;

    /// Every key of the schema, as dotted paths (`services.NAME.port`), from a fully populated
    /// config so that optional keys appear too.
    fn schema_keys() -> Vec<String> {
        let mut c = parse("[project]\nname = \"x\"\n").unwrap();
        c.remote = Some(Remote {
            context: "c".into(),
            connect: Connect::Tunnel,
            server: vec!["https://dev.example:6443".into()],
            quota: Some(Quota {
                cpu: Some("4".into()),
                memory: Some("8Gi".into()),
                pods: Some(20),
            }),
        });
        c.requires = Requires {
            devenv: Some("0.1".into()),
            minikube: Some("1".into()),
            helm: Some("3".into()),
            kubectl: Some("1".into()),
            kubernetes: Some("1".into()),
        };
        c.services.insert(
            "NAME".into(),
            Service {
                image: Some(Image {
                    context: "c".into(),
                    dockerfile: default_dockerfile(),
                    tag: "t".into(),
                }),
                needs: vec!["x".into()],
                ..Service::default()
            },
        );
        let mut keys = Vec::new();
        collect(&serde_json::to_value(&c).unwrap(), "", &mut keys);
        keys.sort();
        keys
    }

    fn collect(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    let is_table = v.is_object() && !matches!(path.as_str(), "services.NAME");
                    if is_table || path == "services" || path == "services.NAME" {
                        collect(v, &path, out);
                    } else {
                        out.push(path);
                    }
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }

    #[test]
    fn docs_config_md_documents_exactly_the_schema() {
        let doc = include_str!("../../docs/config.md");
        let mut documented: Vec<String> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("### `"))
            .filter_map(|l| l.strip_suffix('`'))
            .map(str::to_string)
            .collect();
        documented.sort();
        assert_eq!(documented, schema_keys());
    }
}
