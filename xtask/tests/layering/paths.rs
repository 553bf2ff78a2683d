//! Reading module paths out of Rust source text: `crate::a::{b, c::{d, e}}`
//! gives `a::b`, `a::c::d` and `a::c::e`. Comments are dropped first. String
//! literals are read like code, which is harmless here: no kernel string
//! holds a `crate::` path.

/// The code of a file without its `//` comments (doc comments included).
pub fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}

/// Every path that follows `prefix` where `prefix` starts a path (not right
/// after `::`, `$` or an identifier), with `{...}` groups opened. A path that
/// names the prefix's module itself (`{self, x}`) is empty.
pub fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':' || c == '$') {
            continue;
        }
        let mut reader = Reader {
            text: &code[from..],
            at: 0,
        };
        paths.extend(reader.tree());
    }
    paths
}

/// A use tree, read from the start of `text`.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    /// `name`, `name::tree`, `{tree, tree...}`, or `*`.
    fn tree(&mut self) -> Vec<Vec<String>> {
        if self.eat("{") {
            let mut all = Vec::new();
            loop {
                self.skip_space();
                if self.eat("}") || self.rest().is_empty() {
                    return all;
                }
                all.extend(self.tree());
                self.skip_space();
                if !self.eat(",") {
                    self.eat("}");
                    return all;
                }
            }
        }
        let name = ident_at(self.rest()).to_string();
        if name.is_empty() {
            return vec![Vec::new()];
        }
        self.at += name.len();
        if self.eat("::") {
            let mut paths = self.tree();
            if name != "self" {
                for path in &mut paths {
                    path.insert(0, name.clone());
                }
            }
            return paths;
        }
        // `name as alias`: the alias names nothing new.
        let before = self.at;
        self.skip_space();
        if self.eat("as ") {
            self.skip_space();
            self.at += ident_at(self.rest()).len();
        } else {
            self.at = before;
        }
        if name == "self" {
            vec![Vec::new()]
        } else {
            vec![vec![name]]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::paths_after;

    fn joined(code: &str, prefix: &str) -> Vec<String> {
        paths_after(code, prefix)
            .into_iter()
            .map(|p| p.join("::"))
            .collect()
    }

    #[test]
    fn groups_nest_and_self_names_the_module() {
        let code = "use crate::entry::{self, checker::{IstFrame, Kind as K}, df};";
        assert_eq!(
            joined(code, "crate::"),
            [
                "entry",
                "entry::checker::IstFrame",
                "entry::checker::Kind",
                "entry::df"
            ]
        );
    }

    #[test]
    fn paths_in_code_and_globs_are_read_but_not_inner_segments() {
        let code = "x = crate::arch::cpu::rdtsc(); use crate::arch::vectors::*; a::crate::b";
        assert_eq!(
            joined(code, "crate::"),
            ["arch::cpu::rdtsc", "arch::vectors"]
        );
    }

    #[test]
    fn groups_may_span_lines() {
        let code = "use crate::arch::{\n    cpu,\n    lapic,\n};";
        assert_eq!(joined(code, "crate::"), ["arch::cpu", "arch::lapic"]);
    }
}
