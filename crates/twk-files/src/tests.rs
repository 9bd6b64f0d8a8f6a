use super::*;
use std::os::unix::fs::PermissionsExt as _;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

/// The names in `dir`, sorted (a temporary file left behind would show here).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn replace_writes_0600_in_new_0700_directories_and_leaves_nothing_else() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("a/b/state.json");
    replace(&path, b"one").expect("first");
    replace(&path, b"two").expect("second");
    assert_eq!(std::fs::read(&path).expect("read"), b"two");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&root.path().join("a")), 0o700);
    assert_eq!(mode(&root.path().join("a/b")), 0o700);
    assert_eq!(names(&root.path().join("a/b")), ["state.json"]);
}

#[test]
fn replace_tightens_a_loose_file_by_replacing_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("token");
    std::fs::write(&path, b"old").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    replace(&path, b"new").expect("replace");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(std::fs::read(&path).expect("read"), b"new");
}

#[test]
fn create_leaves_an_existing_file_as_it_is() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("owner.key");
    assert_eq!(create(&path, b"first").expect("create"), Created::New);
    assert_eq!(create(&path, b"second").expect("again"), Created::Existed);
    assert_eq!(std::fs::read(&path).expect("read"), b"first");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(names(root.path()), ["owner.key"]);
}

#[test]
fn writers_racing_to_create_one_file_agree_on_one_content() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("owner.key");
    let barrier = std::sync::Barrier::new(8);
    let outcomes: Vec<(Created, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u8)
            .map(|i| {
                let (path, barrier) = (&path, &barrier);
                s.spawn(move || {
                    let mine = vec![b'a' + i; 4096];
                    barrier.wait();
                    (create(path, &mine).expect("create"), mine)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(c, _)| *c == Created::New)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one writer made the file");
    assert_eq!(std::fs::read(&path).expect("read"), winners[0].1);
    assert_eq!(names(root.path()), ["owner.key"]);
}

#[test]
fn a_directory_where_the_file_should_be_is_an_error_and_stays() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("taken");
    std::fs::create_dir(&path).expect("mkdir");
    assert!(replace(&path, b"x").is_err());
    assert_eq!(create(&path, b"x").expect("create"), Created::Existed);
    assert!(path.is_dir());
    assert_eq!(names(root.path()), ["taken"]);
}

#[test]
fn a_file_where_the_directory_should_be_is_an_error() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("plain"), b"").expect("write");
    let err = replace(&root.path().join("plain/key"), b"x").expect_err("not a directory");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists
        ),
        "{err:?}"
    );
    assert!(create(&root.path().join("plain/key"), b"x").is_err());
}
