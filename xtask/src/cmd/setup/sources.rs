//! Enabling a Debian suite (bookworm-backports) by copying the machine's own
//! source entry with only the suite changed: the archive's address is read
//! from the machine, never written down in this project.

/// Where the copied entry goes; its name tells an administrator who wrote it.
pub const DEB822_DEST: &str = "/etc/apt/sources.list.d/istorm-backports.sources";
pub const ONE_LINE_DEST: &str = "/etc/apt/sources.list.d/istorm-backports.list";

/// The machine's source files worth copying from, in order of preference.
pub const DEB822_SOURCE: &str = "/etc/apt/sources.list.d/debian.sources";
pub const ONE_LINE_SOURCE: &str = "/etc/apt/sources.list";

/// From a deb822 file (`debian.sources`): the first `deb` stanza whose
/// `Suites:` holds `codename`, with `Suites: suite` instead and its comments
/// left out. `None` when no stanza fits.
pub fn deb822_entry(text: &str, codename: &str, suite: &str) -> Option<String> {
    text.split("\n\n")
        .map(|stanza| {
            stanza
                .lines()
                .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
                .collect::<Vec<_>>()
        })
        .find(|lines| {
            let field = |name: &str| {
                lines.iter().find_map(|l| {
                    let (key, value) = l.split_once(':')?;
                    (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim().to_string())
                })
            };
            let types = field("Types").unwrap_or_default();
            let suites = field("Suites").unwrap_or_default();
            types.split_whitespace().any(|t| t == "deb")
                && suites.split_whitespace().any(|s| s == codename)
        })
        .map(|lines| {
            let mut out = String::new();
            for line in lines {
                let is_suites = line
                    .split_once(':')
                    .is_some_and(|(key, _)| key.trim().eq_ignore_ascii_case("Suites"));
                if is_suites {
                    out.push_str(&format!("Suites: {suite}\n"));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            out
        })
}

/// From a one-line `sources.list`: the first `deb` line for `codename`, with
/// the suite word replaced.
pub fn one_line_entry(text: &str, codename: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"deb") {
            return None;
        }
        // `deb [options] URI suite components...`: the options are one word
        // in brackets (possibly several words until `]`).
        let mut i = 1;
        if words.get(1).is_some_and(|w| w.starts_with('[')) {
            while i < words.len() && !words[i].ends_with(']') {
                i += 1;
            }
            i += 1;
        }
        let suite_at = i + 1;
        (words.get(suite_at) == Some(&codename)).then(|| {
            let mut out: Vec<&str> = words.clone();
            out[suite_at] = suite;
            format!("{}\n", out.join(" "))
        })
    })
}

/// Whether any source text already names `suite` (a `Suites:` field or the
/// suite word of a one-line entry).
pub fn names_suite(text: &str, suite: &str) -> bool {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.split_whitespace().any(|w| w == suite))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n# a comment\nURIs: http://archive.example/debian\n\
        Suites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\n\
        Types: deb\nURIs: http://archive.example/debian-security\nSuites: bookworm-security\n\
        Components: main\n";

    #[test]
    fn deb822_copies_the_first_stanza_with_the_suite_changed() {
        let entry = deb822_entry(DEB822, "bookworm", "bookworm-backports").unwrap();
        assert_eq!(
            entry,
            "Types: deb\nURIs: http://archive.example/debian\nSuites: bookworm-backports\n\
             Components: main\nSigned-By: /k.gpg\n"
        );
        assert_eq!(deb822_entry(DEB822, "trixie", "trixie-backports"), None);
        assert_eq!(
            deb822_entry("Types: deb-src\nSuites: bookworm\n", "bookworm", "x"),
            None
        );
    }

    #[test]
    fn one_line_copies_the_first_deb_line() {
        let list = "# deb http://old bookworm main\ndeb-src http://a/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://a/debian bookworm main contrib\n";
        assert_eq!(
            one_line_entry(list, "bookworm", "bookworm-backports").unwrap(),
            "deb [arch=amd64 signed-by=/k.gpg] http://a/debian bookworm-backports main contrib\n"
        );
        assert_eq!(
            one_line_entry("deb http://a/debian bookworm main\n", "bookworm", "b-bp").unwrap(),
            "deb http://a/debian b-bp main\n"
        );
        assert_eq!(
            one_line_entry("deb http://a/debian trixie main\n", "bookworm", "x"),
            None
        );
    }

    #[test]
    fn a_suite_already_named_is_seen() {
        assert!(names_suite(
            "Suites: bookworm-backports\n",
            "bookworm-backports"
        ));
        assert!(!names_suite(DEB822, "bookworm-backports"));
        assert!(!names_suite(
            "# deb http://a bookworm-backports main\n",
            "bookworm-backports"
        ));
    }
}
