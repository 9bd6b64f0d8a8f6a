use super::*;
use std::os::unix::fs::PermissionsExt as _;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn value(s: &Secret) -> String {
    s.expose_str().unwrap().to_owned()
}

#[test]
fn the_first_use_makes_the_file_private_and_later_ones_reuse_it() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("data/twk");
    let file = TestSecrets::in_dir(&dir);
    assert!(file.load().unwrap().is_empty(), "no file: no secrets");
    assert!(!dir.exists(), "reading creates nothing");

    let first = file.get_or_make(Provider::Stripe).unwrap();
    assert!(first.made_now);
    assert!(value(&first.secret).starts_with("whsec_"));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(file.path()), 0o600);
    assert_eq!(file.path(), dir.join(FILE_NAME));

    let again = file.get_or_make(Provider::Stripe).unwrap();
    assert_eq!(
        (again.secret.clone(), again.made_now),
        (first.secret.clone(), false)
    );
    // Another provider gets its own, and the first one stays.
    let github = file.get_or_make(Provider::Github).unwrap();
    assert!(github.made_now);
    assert_ne!(github.secret, first.secret);
    let all = TestSecrets::in_dir(&dir).load().unwrap();
    assert_eq!(all.get(&Provider::Stripe), Some(&first.secret));
    assert_eq!(all.get(&Provider::Github), Some(&github.secret));
    assert_eq!(mode(file.path()), 0o600, "a rewrite keeps it private");

    let mut secrets = Secrets::new();
    file.add_to(&mut secrets).unwrap();
    assert_eq!(secrets.test_secret(Provider::Stripe), Some(&first.secret));
    assert!(
        secrets.get(Provider::Stripe).is_none(),
        "never a configured secret"
    );
}

#[test]
fn the_file_is_plain_toml_and_keeps_keys_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let file = TestSecrets::in_dir(dir.path());
    std::fs::write(
        file.path(),
        "stripe = \"whsec_kept\"\nsome-future-provider = \"fp_1\"\n",
    )
    .unwrap();
    let slack = file.get_or_make(Provider::Slack).unwrap();
    let text = std::fs::read_to_string(file.path()).unwrap();
    assert!(text.starts_with("# twk's test secrets"), "{text}");
    assert!(text.contains("some-future-provider = \"fp_1\""), "{text}");
    assert!(text.contains("stripe = \"whsec_kept\""), "{text}");
    assert!(text.contains(&format!("slack = \"{}\"", value(&slack.secret))));
    let kept = file.get_or_make(Provider::Stripe).unwrap();
    assert_eq!(
        (value(&kept.secret), kept.made_now),
        ("whsec_kept".into(), false)
    );
}

#[test]
fn a_corrupt_file_is_an_error_naming_it_and_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let file = TestSecrets::in_dir(dir.path());
    for (bad, says) in [
        ("stripe = \"whsec_leak\"\ngithub = \n", "line 2"),
        ("stripe = 42\n", "string"),
        ("stripe = \"\"\n", "empty"),
        ("<<<<<<< HEAD\nstripe = \"whsec_leak\"\n", "line 1"),
    ] {
        std::fs::write(file.path(), bad).unwrap();
        let e = file.get_or_make(Provider::Stripe).expect_err(bad);
        assert!(matches!(e, TestSecretsError::Corrupt { .. }), "{e:?}");
        let chain = twk_sanitize::error_chain(&e);
        assert!(
            chain.contains(&file.path().display().to_string()),
            "{chain}"
        );
        assert!(chain.contains(says), "{bad:?}: {chain}");
        assert!(
            !chain.contains("whsec_leak"),
            "the secret was quoted: {chain}"
        );
        assert_eq!(
            std::fs::read_to_string(file.path()).unwrap(),
            bad,
            "untouched"
        );
        assert!(file.load().is_err());
    }
}

#[test]
fn an_unreadable_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = TestSecrets::in_dir(dir.path());
    // A directory where the file should be: unreadable whoever runs the test (root too).
    std::fs::create_dir(file.path()).unwrap();
    let e = file.get_or_make(Provider::Github).expect_err("a directory");
    assert!(matches!(e, TestSecretsError::Read { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&file.path().display().to_string()),
        "{e}"
    );
}

/// Many first uses at once (each with its own open file, as separate processes have): one
/// secret per provider, whoever wins, and no provider's secret lost to another's write.
#[test]
fn racing_first_uses_agree_on_one_secret_per_provider() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twk");
    let providers = [Provider::Stripe, Provider::Github, Provider::Slack];
    let start = Arc::new(std::sync::Barrier::new(12));
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let (path, start) = (path.clone(), start.clone());
            let p = providers[i % providers.len()];
            std::thread::spawn(move || {
                start.wait();
                (p, TestSecrets::in_dir(&path).get_or_make(p).unwrap())
            })
        })
        .collect();
    let got: Vec<(Provider, TestSecret)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let kept = TestSecrets::in_dir(&path).load().unwrap();
    for p in providers {
        let mine: Vec<&TestSecret> = got
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            mine.iter().filter(|s| s.made_now).count(),
            1,
            "{p}: made once"
        );
        assert!(mine.iter().all(|s| Some(&s.secret) == kept.get(&p)), "{p}");
    }
    assert_eq!(kept.len(), providers.len());
}

#[test]
fn the_live_view_follows_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = TestSecrets::in_dir(dir.path());
    let live = LiveTestSecrets::new(file.clone());
    assert_eq!(live.get(Provider::Stripe), None);
    let made = file.get_or_make(Provider::Stripe).unwrap();
    assert_eq!(live.get(Provider::Stripe), Some(made.secret.clone()));
    assert_eq!(live.get(Provider::Github), None);
    let github = file.get_or_make(Provider::Github).unwrap();
    assert_eq!(live.get(Provider::Github), Some(github.secret));
    // Broken: none (the verdict stays no_secret), and back when it is fixed.
    let good = std::fs::read_to_string(file.path()).unwrap();
    std::fs::write(file.path(), "not toml at all = = =\n").unwrap();
    assert_eq!(live.get(Provider::Stripe), None);
    std::fs::write(file.path(), good).unwrap();
    assert_eq!(live.get(Provider::Stripe), Some(made.secret));
    std::fs::remove_file(file.path()).unwrap();
    assert!(live.all().is_empty());
}
