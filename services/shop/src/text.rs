//! Free text from requests (names, descriptions, reasons).

/// Whether `text` has at most `max` characters and no control characters but
/// line breaks and tabs: PostgreSQL cannot store NUL at all, and the others
/// have no place in names and notes shown to people.
pub fn fits(text: &str, max: usize) -> bool {
    text.chars().count() <= max
        && !text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

#[cfg(test)]
mod tests {
    use super::fits;

    #[test]
    fn text_fits_when_short_enough_and_free_of_control_characters() {
        assert!(fits("", 0));
        assert!(fits("Stoneware mug,\n330 ml\t☕", 30));
        assert!(!fits("four", 3));
        assert!(fits("ééé", 3), "characters, not bytes");
        assert!(!fits("a\0b", 10));
        assert!(!fits("bell\u{7}", 10));
        assert!(!fits("esc\u{1b}[31m", 20));
    }
}
