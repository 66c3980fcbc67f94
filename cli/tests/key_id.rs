//! `llm-cost key-id`: the same hash the filter puts in records, from a key on stdin.

use std::io::Write;
use std::process::{Command, Stdio};

fn key_id_of(stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-cost"))
        .arg("key-id")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

#[test]
fn prints_the_records_key_id_for_a_key_or_a_bearer_header() {
    // sha256("sk-test-not-a-real-key")[..12], as `sha256sum` prints it.
    let expected = "1ab5b22bf738\n";
    assert_eq!(key_id_of("sk-test-not-a-real-key\n").1, expected);
    assert_eq!(key_id_of("Bearer sk-test-not-a-real-key").1, expected);
}

#[test]
fn an_empty_stdin_is_an_error_that_says_how_to_pipe_the_key() {
    let (ok, stdout, stderr) = key_id_of("  \n");
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(stderr.contains("pipe it in"), "{stderr}");
}
