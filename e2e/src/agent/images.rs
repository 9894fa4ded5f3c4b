//! Which local binary stands in for a container image.
//!
//! There is no container runtime: an image is a pattern mapped to a binary
//! built on this machine (`rill/broker:* = target/debug/rill-broker`). The
//! binary is the image's entrypoint and its directory is the image's `PATH`,
//! so a container `command: [rill-broker]` finds it by name. Patterns are
//! globs where `*` matches any run of characters (`/` included); the first
//! matching line wins.

use std::path::{Path, PathBuf};

use super::AgentError;

/// One `pattern = binary` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRule {
    /// Glob over the full image reference (`registry/repo:tag`).
    pub pattern: String,
    /// The binary that runs for a matching image.
    pub binary: PathBuf,
}

/// The image table of the agent, in the order rules were given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMap {
    rules: Vec<ImageRule>,
}

impl ImageMap {
    /// Parses one `PATTERN=BINARY` rule (a `--image` flag or a line of an
    /// image-map file; spaces around `=` are ignored).
    pub fn parse_rule(line: &str) -> Result<ImageRule, AgentError> {
        let (pattern, binary) = line.split_once('=').ok_or_else(|| {
            AgentError::Config(format!("image rule {line:?} is not PATTERN=BINARY"))
        })?;
        let (pattern, binary) = (pattern.trim(), binary.trim());
        if pattern.is_empty() || binary.is_empty() {
            return Err(AgentError::Config(format!(
                "image rule {line:?} needs both a pattern and a binary"
            )));
        }
        Ok(ImageRule {
            pattern: pattern.to_owned(),
            binary: PathBuf::from(binary),
        })
    }

    /// Parses an image-map file: one rule a line, `#` comments, blank lines.
    pub fn parse_file(text: &str) -> Result<Vec<ImageRule>, AgentError> {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(Self::parse_rule)
            .collect()
    }

    pub fn new(rules: Vec<ImageRule>) -> Self {
        Self { rules }
    }

    /// The binary standing in for `image`, if a rule matches.
    pub fn resolve(&self, image: &str) -> Option<&Path> {
        self.rules
            .iter()
            .find(|r| glob_match(&r.pattern, image))
            .map(|r| r.binary.as_path())
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: exact match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// What the container runs: the program (absolute) and its arguments, from
/// the image's entrypoint and the container's `command`/`args` (already
/// `$(VAR)`-expanded). A `command[0]` without `/` is looked up in the
/// image's directory, then in `path_dirs` (the host's tools: there is no
/// image filesystem); one with `/` must exist as written.
pub fn entrypoint(
    image_binary: &Path,
    command: &[String],
    args: &[String],
    path_dirs: &[PathBuf],
) -> Result<(PathBuf, Vec<String>), String> {
    let Some((program, command_args)) = command.split_first() else {
        return Ok((image_binary.to_owned(), args.to_vec()));
    };
    let mut all_args = command_args.to_vec();
    all_args.extend_from_slice(args);
    if program.contains('/') {
        let path = PathBuf::from(program);
        if path.is_file() {
            return Ok((path, all_args));
        }
        // The image's own entrypoint under its in-image path.
        if path.file_name() == image_binary.file_name() {
            return Ok((image_binary.to_owned(), all_args));
        }
        return Err(format!("exec: {program:?}: no such file"));
    }
    if image_binary.file_name().and_then(|n| n.to_str()) == Some(program.as_str()) {
        return Ok((image_binary.to_owned(), all_args));
    }
    let image_dir = image_binary.parent().map(Path::to_owned);
    image_dir
        .iter()
        .chain(path_dirs)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .map(|p| (p, all_args))
        .ok_or_else(|| format!("exec: {program:?}: executable file not found in $PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> ImageMap {
        ImageMap::new(
            ImageMap::parse_file(
                "# comment\n\
                 rill/broker:* = /t/debug/rill-broker\n\
                 \n\
                 */rill/broker:* = /t/debug/rill-broker   # with a registry\n\
                 rill/operator:0.1.0=/t/debug/rill-operator\n",
            )
            .expect("parses"),
        )
    }

    #[test]
    fn given_rules_when_resolving_then_the_first_matching_glob_wins() {
        let m = map();
        assert_eq!(
            m.resolve("rill/broker:0.1.0"),
            Some(Path::new("/t/debug/rill-broker"))
        );
        assert_eq!(
            m.resolve("registry.local:5000/rill/broker:dev"),
            Some(Path::new("/t/debug/rill-broker"))
        );
        assert_eq!(
            m.resolve("rill/operator:0.1.0"),
            Some(Path::new("/t/debug/rill-operator"))
        );
        assert_eq!(m.resolve("rill/operator:0.2.0"), None);
        assert_eq!(m.resolve("busybox:1.36"), None);
        assert_eq!(m.resolve("rill/brokerx"), None);
    }

    #[test]
    fn given_bad_rules_when_parsing_then_the_error_names_the_line() {
        let err = ImageMap::parse_rule("rill/broker:*")
            .unwrap_err()
            .to_string();
        assert!(err.contains("PATTERN=BINARY"), "{err}");
        assert!(ImageMap::parse_rule(" = /bin/true").is_err());
        assert!(ImageMap::parse_rule("x = ").is_err());
    }

    #[test]
    fn given_globs_when_matching_then_star_spans_any_characters() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a*b*c", "a-b-c"));
        assert!(!glob_match("a*b*c", "a-c"));
        assert!(glob_match("abc", "abc"));
        assert!(!glob_match("abc", "abcd"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn given_a_container_command_when_resolving_then_the_image_binary_is_found_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = dir.path().join("rill-broker");
        std::fs::write(&broker, "").expect("write");
        let tool = dir.path().join("rill");
        std::fs::write(&tool, "").expect("write");
        let args = vec!["--x".to_owned()];

        // No command: the image's entrypoint with the container's args.
        assert_eq!(
            entrypoint(&broker, &[], &args, &[]),
            Ok((broker.clone(), args.clone()))
        );
        // The entrypoint by name, and under an in-image absolute path.
        assert_eq!(
            entrypoint(&broker, &["rill-broker".into()], &args, &[]),
            Ok((broker.clone(), args.clone()))
        );
        assert_eq!(
            entrypoint(&broker, &["/usr/local/bin/rill-broker".into()], &[], &[]),
            Ok((broker.clone(), vec![]))
        );
        // Another binary of the image's directory; command args come first.
        assert_eq!(
            entrypoint(&broker, &["rill".into(), "topics".into()], &args, &[]),
            Ok((tool, vec!["topics".into(), "--x".into()]))
        );
        let missing = entrypoint(&broker, &["nope".into()], &[], &[]).unwrap_err();
        assert!(missing.contains("not found"), "{missing}");
    }
}
