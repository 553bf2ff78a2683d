//! What a table cell shows of a result: the key `key=value` words of the
//! tests whose details carry more than fits (a sweep's reach, what it
//! proved), else the details shortened.

const EVIDENCE_MAX: usize = 70;

/// The words of a result worth a table cell, for the tests whose details
/// carry more than fits: the sweep's reach, and what it proved.
const KEY_EVIDENCE: &[(&str, &[&str])] = &[
    (
        "scenarios::db_kernel_nmi_db",
        &["window_coverage=", "nmi_in_db=", "nested_db="],
    ),
    (
        "scenarios::db_user_nmi_db",
        &["window_coverage=", "nmi_in_db=", "nested_db="],
    ),
];

/// `key=value` words of `message` for the test's key evidence, or its
/// shortened text (a leading clause without `=`, such as "corruption
/// detected as expected", dropped).
pub fn evidence(test: &str, message: &str) -> String {
    if let Some((_, keys)) = KEY_EVIDENCE.iter().find(|(t, _)| *t == test) {
        let mut words: Vec<String> = message
            .split([' ', ';', ','])
            .filter(|w| keys.iter().any(|k| w.starts_with(k)))
            .map(str::to_string)
            .collect();
        if !words.is_empty() {
            // `window_coverage=29/61 (47%)`: the percentage goes with it.
            if let Some(pct) = message
                .split_once("window_coverage=")
                .and_then(|(_, rest)| rest.split_once('('))
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(pct, _)| pct)
            {
                words.push(format!("({pct})"));
            }
            return words.join(" ");
        }
    }
    let text = match message.split_once("; ") {
        Some((head, rest)) if !head.contains('=') && rest.contains('=') => rest,
        _ => message,
    };
    shorten(text)
}

pub fn shorten(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= EVIDENCE_MAX {
        return text.to_string();
    }
    let cut: String = text.chars().take(EVIDENCE_MAX - 3).collect();
    format!("{cut}...")
}
