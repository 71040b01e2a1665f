//! The tool lookup fails loudly, naming the tool and the install script.

use arbor_testsupport::tools::{require_tool, tool_stdout};

#[test]
fn missing_tool_error_names_the_tool_and_install_deps() {
    let error = require_tool("arbor-no-such-tool").expect_err("the tool does not exist");
    let message = error.to_string();
    assert!(message.contains("`arbor-no-such-tool`"), "{message}");
    assert!(message.contains("scripts/install-deps"), "{message}");
}

#[test]
fn failing_tool_reports_its_stderr() {
    let error =
        tool_stdout("rpm", ["-qp", "/nonexistent/arbor.rpm"]).expect_err("rpm fails on a missing file");
    assert!(error.to_string().contains("/nonexistent/arbor.rpm"), "{error:#}");
}
