//! The shell completions and the man page tools/gen-completions writes,
//! from the generator the tool runs (examples/gen-completions).

#[path = "../../examples/gen-completions/generate.rs"]
mod generate;

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate::generate(dir.path()).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "utrace.bash",
            "_utrace",
            "utrace.fish",
            "utrace.elv",
            "utrace.1"
        ]
    );
    let bash = std::fs::read_to_string(dir.path().join("utrace.bash")).unwrap();
    for option in ["--report", "--since", "--color", "--no-function"] {
        assert!(bash.contains(option), "bash completion lacks {option}");
    }
    assert!(
        bash.contains("call-graph"),
        "--format's values are completed"
    );
    let man = std::fs::read_to_string(dir.path().join("utrace.1")).unwrap();
    assert!(man.contains(".TH utrace 1"), "{man}");
    assert!(man.contains("\\-\\-report"), "the options are in the page");
}
