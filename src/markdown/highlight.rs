//! Code in a reply, coloured by language, as escaped HTML with a class per kind of token.
//!
//! `hl-lite` lexes the languages it knows (Rust, JavaScript/TypeScript, Python, shell, HTML,
//! CSS, JSON, YAML, TOML, Markdown, Dockerfile). The C family, Go, Java/Kotlin and SQL, which
//! people ask about as often and `hl-lite` lacks, go to `oxidoc-highlight`. Its lexers for
//! exactly these languages passed a fuzz of hostile input (millions of random and truncated
//! inputs: no panic, ranges in order on character boundaries, linear time), and some of its
//! others did not, so only these are routed to it, and every range it returns is checked again
//! here: a lexer that slipped shows its block as plain text instead of breaking the page.

use pulldown_cmark_escape::escape_html;

/// The lexer for one code block.
#[derive(Clone, Copy)]
pub enum Lexer {
    HlLite(hl_lite::Lang),
    Oxidoc(&'static str),
}

/// The fence labels routed to `oxidoc-highlight`, lower case, with the name it knows them by.
const OXIDOC_LANGUAGES: &[(&str, &str)] = &[
    ("c", "c"),
    ("h", "c"),
    ("cpp", "cpp"),
    ("c++", "cpp"),
    ("cc", "cpp"),
    ("cxx", "cpp"),
    ("hpp", "cpp"),
    ("hxx", "cpp"),
    ("go", "go"),
    ("golang", "go"),
    ("java", "java"),
    ("kotlin", "kotlin"),
    ("kt", "kotlin"),
    ("sql", "sql"),
    ("mysql", "sql"),
    ("postgresql", "sql"),
    ("postgres", "sql"),
    ("psql", "sql"),
    ("sqlite", "sql"),
];

impl Lexer {
    /// The lexer for a fence's language label, if there is one.
    pub fn for_language(label: &str) -> Option<Self> {
        if let Some(lang) = hl_lite::Lang::from_slug(label) {
            return Some(Self::HlLite(lang));
        }
        OXIDOC_LANGUAGES
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(label))
            .map(|&(_, name)| Self::Oxidoc(name))
    }

    /// `code` as HTML: spans with a class (`hl-keyword`, …) around tokens, plain text bare,
    /// every piece escaped.
    pub fn to_html(self, code: &str) -> String {
        match self {
            Self::HlLite(lang) => {
                let mut html = String::with_capacity(code.len() * 2);
                for span in hl_lite::highlight(lang, code) {
                    let class = (span.kind != hl_lite::Kind::Plain).then(|| span.kind.class());
                    push_span(&mut html, class, span.text);
                }
                html
            }
            Self::Oxidoc(name) => {
                let tokens = oxidoc_highlight::scan(code, name);
                let ranges = tokens
                    .iter()
                    .map(|token| (token.start, token.end, oxidoc_class(token.kind)));
                checked_html(code, ranges).unwrap_or_else(|| {
                    let mut html = String::new();
                    push_span(&mut html, None, code);
                    html
                })
            }
        }
    }
}

/// Our class for an `oxidoc-highlight` token: the same names as `hl-lite`'s, so one style
/// sheet colours both. Operators and punctuation stay plain, as `hl-lite` leaves them.
fn oxidoc_class(kind: oxidoc_highlight::token::TokenKind) -> Option<&'static str> {
    use oxidoc_highlight::token::TokenKind;
    match kind {
        TokenKind::Keyword => Some("keyword"),
        TokenKind::String => Some("string"),
        TokenKind::Comment => Some("comment"),
        TokenKind::Number => Some("number"),
        TokenKind::Function | TokenKind::Builtin => Some("function"),
        TokenKind::Type => Some("type"),
        TokenKind::Property => Some("property"),
        TokenKind::Attr => Some("attribute"),
        TokenKind::Variable => Some("variable"),
        TokenKind::Operator | TokenKind::Punctuation | TokenKind::Plain => None,
    }
}

/// `code` with the classed byte ranges as spans, or `None` unless the ranges are in order,
/// apart, inside `code` and on character boundaries.
fn checked_html<'a>(
    code: &str,
    ranges: impl Iterator<Item = (usize, usize, Option<&'a str>)>,
) -> Option<String> {
    let mut html = String::with_capacity(code.len() * 2);
    let mut shown = 0;
    for (start, end, class) in ranges {
        push_span(&mut html, None, code.get(shown..start)?);
        push_span(&mut html, class, code.get(start..end)?);
        shown = end;
    }
    push_span(&mut html, None, code.get(shown..)?);
    Some(html)
}

fn push_span(html: &mut String, class: Option<&str>, text: &str) {
    if text.is_empty() {
        return;
    }
    match class {
        None => {
            let _ = escape_html(&mut *html, text);
        }
        Some(class) => {
            html.push_str("<span class=\"hl-");
            html.push_str(class);
            html.push_str("\">");
            let _ = escape_html(&mut *html, text);
            html.push_str("</span>");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_family_go_java_and_sql_are_highlighted() {
        let cases = [
            (
                "c",
                "int main(void) { return 0; }",
                "<span class=\"hl-type\">int</span>",
            ),
            (
                "C++",
                "auto v = std::vector<int>{};",
                "<span class=\"hl-keyword\">auto</span>",
            ),
            (
                "go",
                "func main() { x := \"s\" }",
                "<span class=\"hl-keyword\">func</span>",
            ),
            (
                "Java",
                "public class A {} // note",
                "<span class=\"hl-comment\">// note</span>",
            ),
            (
                "SQL",
                "SELECT id FROM t WHERE x = 'a';",
                "<span class=\"hl-keyword\">SELECT</span>",
            ),
            (
                "postgres",
                "select 1",
                "<span class=\"hl-keyword\">select</span>",
            ),
        ];
        for (label, code, expected) in cases {
            let lexer = Lexer::for_language(label).expect(label);
            let html = lexer.to_html(code);
            assert!(html.contains(expected), "{label}: {html}");
        }
        assert!(Lexer::for_language("cobol").is_none());
    }

    #[test]
    fn ranges_out_of_order_out_of_bounds_or_inside_a_character_are_refused() {
        let code = "é = 1";
        assert!(checked_html(code, [(0, 2, Some("variable"))].into_iter()).is_some());
        // Inside `é` (two bytes).
        assert!(checked_html(code, [(0, 1, Some("variable"))].into_iter()).is_none());
        assert!(checked_html(code, [(3, 9, Some("number"))].into_iter()).is_none());
        assert!(checked_html(code, [(5, 6, Some("number")), (3, 4, None)].into_iter()).is_none());
    }

    #[test]
    fn every_prefix_of_hostile_code_reads_as_written() {
        // Unterminated strings, comments and raw strings, and characters of every width, cut
        // at each character boundary as a stream would cut them.
        let code = "/* é漢🦀 */ char *s = \"a\\\"</code><b>\"; R\"(x // y)\" `raw\n-- 'it''s' -- é\nx := 1'000; /* open";
        for label in ["c", "cpp", "go", "java", "kotlin", "sql"] {
            let lexer = Lexer::for_language(label).expect(label);
            for (cut, _) in code.char_indices() {
                let prefix = &code[..cut];
                let html = lexer.to_html(prefix);
                let text = crate::markdown::tests::text_of(&html);
                assert_eq!(text, prefix, "{label} at {cut}");
                assert!(!html.contains("<b>"), "{label} at {cut}");
            }
        }
    }
}
