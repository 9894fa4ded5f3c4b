//! `$(VAR)` expansion in env values, command and args, with Kubernetes'
//! rules: `$(NAME)` is replaced when `NAME` is defined, left as written when
//! it is not; `$$` is an escaped `$` (so `$$(NAME)` gives `$(NAME)`); any
//! other `$` stays as it is.

/// Expands `$(NAME)` references in `input` with `lookup`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                // An unterminated reference is kept literally.
                None => {
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars() -> HashMap<&'static str, &'static str> {
        HashMap::from([("POD", "rill-0"), ("IP", "127.0.16.2"), ("EMPTY", "")])
    }

    fn run(input: &str) -> String {
        let vars = vars();
        expand(input, |name| vars.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn given_defined_references_when_expanding_then_they_are_replaced() {
        assert_eq!(run("$(IP):9092"), "127.0.16.2:9092");
        assert_eq!(
            run("$(POD).events-brokers.data.svc"),
            "rill-0.events-brokers.data.svc"
        );
        assert_eq!(run("a$(EMPTY)b"), "ab");
        assert_eq!(run("$(POD)$(IP)"), "rill-0127.0.16.2");
    }

    #[test]
    fn given_undefined_references_when_expanding_then_they_are_left_as_written() {
        assert_eq!(run("$(NOPE):1"), "$(NOPE):1");
        assert_eq!(run("$()"), "$()");
    }

    #[test]
    fn given_escapes_and_lone_dollars_when_expanding_then_kubernetes_rules_apply() {
        assert_eq!(run("$$(POD)"), "$(POD)");
        assert_eq!(run("$$$(POD)"), "$rill-0");
        assert_eq!(run("cost: 5$"), "cost: 5$");
        assert_eq!(run("$HOME"), "$HOME");
        assert_eq!(run("$(POD"), "$(POD");
        assert_eq!(run("no references"), "no references");
    }
}
