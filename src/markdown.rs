//! Replies as people expect to read them: CommonMark with GitHub's tables, task lists,
//! strikethrough and bare-URL autolinks, turned into HTML that is safe to put in the page.
//!
//! Model output is untrusted (a poisoned document can steer it), so nothing it writes becomes
//! live markup: raw HTML is shown as text, a link keeps only an `http`, `https` or `mailto`
//! address and opens in a new tab with no referrer, and an image is never fetched — it becomes a
//! link that names its host. Every attribute this module writes is escaped; the page's CSP is
//! the second line. Code blocks in a language one of our lexers knows are highlighted with
//! classes (`highlight`; the code's text escaped like any other).
//!
//! Streaming renders only what changed: [`render_tail`] splits a growing reply into blocks that
//! can no longer change (rendered once) and the open block at the end (rendered again with each
//! token). The same code renders a whole reply on the server, so both agree.
//!
//! A reply cannot make the renderer build more than [`MAX_TABLE_CELLS`] table cells. GFM pads
//! every short row to its header's width, and pulldown-cmark builds a document's whole tree
//! before the first event, capping the padding per table only: 128 tables of 512 columns (394 KB
//! of text) once took 1.96 GB and 7.3 s. An upper bound on the cells is counted from the text
//! first ([`table_cells`]); from the group of lines where the count passes the budget, the rest
//! of the reply is shown as plain text.

use pulldown_cmark::{
    Alignment, CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd,
    TextMergeStream,
};
use pulldown_cmark_escape::{escape_href, escape_html};

mod highlight;
use highlight::Lexer;

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// Table cells, real and padded, that one reply may make the renderer build (about 5 MB of
/// parser tree and 1 MB of HTML at most); a real table of 20 columns and 2,000 rows uses 42,000.
pub const MAX_TABLE_CELLS: usize = 100_000;

/// A whole reply as safe HTML.
pub fn render(text: &str) -> String {
    match table_cells(text, MAX_TABLE_CELLS).1 {
        None => render_markdown(text),
        Some(cut) => {
            let mut html = render_markdown(&text[..cut]);
            html.push_str(&unrendered(&text[cut..]));
            html
        }
    }
}

/// `text` as safe HTML, with no budget (the caller has checked it).
fn render_markdown(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + text.len() / 2);
    // Merged text events, so a bare URL is never cut in two.
    let events = TextMergeStream::new(Parser::new_ext(text, options()));
    pulldown_cmark::html::push_html(&mut html, Safe::new(events));
    html
}

/// The rest of a reply past the table budget, as the text it is.
fn unrendered(rest: &str) -> String {
    let mut html = String::from(
        "<div class=\"unrendered\"><p class=\"unrendered-note\">The rest of this reply is \
         shown as plain text: its tables are larger than Rill renders.</p><pre>",
    );
    let _ = escape_html(&mut html, rest);
    html.push_str("</pre></div>\n");
    html
}

/// An upper bound on the table cells the parser can build for `text`, and, when the running
/// count passes `budget`, where the text must stop being rendered: the start of the group of
/// lines (a run of non-blank lines) where it passed.
///
/// A table cannot span a blank line, so a delimiter row (`|---|:-:|`, after any `>` and
/// spaces) can give at most its column count times the lines from its header to the end of its
/// group. Rows are counted without asking whether each line really is one, so the bound holds
/// whatever the document.
pub fn table_cells(text: &str, budget: usize) -> (usize, Option<usize>) {
    /// The run of non-blank lines being read.
    #[derive(Default)]
    struct Group {
        start: usize,
        lines: usize,
        /// Each delimiter row's line in the group, and its columns.
        delimiters: Vec<(usize, usize)>,
    }
    impl Group {
        /// Cells its tables can have: each delimiter row's columns, times its header, itself
        /// and every line after it in the group.
        fn cells(&self) -> usize {
            self.delimiters.iter().fold(0usize, |sum, &(at, columns)| {
                sum.saturating_add(columns.saturating_mul(self.lines - at + 1))
            })
        }
    }
    let mut total = 0usize;
    let mut group = Group::default();
    let mut offset = 0;
    for line in lines(text) {
        // Blank as CommonMark says: spaces and tabs only (a no-break space makes a table row).
        if line
            .bytes()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            total = total.saturating_add(group.cells());
            if total > budget {
                return (total, Some(group.start));
            }
            group = Group::default();
        } else {
            if group.lines == 0 {
                group.start = offset;
            }
            if let Some(columns) = delimiter_columns(line) {
                group.delimiters.push((group.lines, columns));
            }
            group.lines += 1;
        }
        offset += line.len();
    }
    total = total.saturating_add(group.cells());
    let cut = (total > budget).then_some(group.start);
    (total, cut)
}

/// `text`'s lines with their endings, as CommonMark ends them: at `\n`, `\r\n` or a lone `\r`.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match rest.find(['\n', '\r']) {
            None => rest.len(),
            Some(i) if rest[i..].starts_with("\r\n") => i + 2,
            Some(i) => i + 1,
        };
        let (line, after) = rest.split_at(end);
        rest = after;
        Some(line)
    })
}

/// The columns a line would have as a table's delimiter row, if it can be one.
fn delimiter_columns(line: &str) -> Option<usize> {
    let row = line
        .trim_start_matches([' ', '\t', '>'])
        .trim_end_matches([' ', '\t', '\r', '\n']);
    let delimiter = row.contains('|')
        && row.contains('-')
        && row
            .chars()
            .all(|c| matches!(c, '|' | '-' | ':' | ' ' | '\t'));
    if !delimiter {
        return None;
    }
    let inner = row.strip_prefix('|').unwrap_or(row);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    Some(inner.split('|').count())
}

/// The rendering of the part of a reply after what is already shown.
#[derive(Clone, Debug)]
pub struct TailRender {
    /// How many bytes at the start of the tail are final: their blocks cannot change, whatever
    /// text follows.
    pub settled_len: usize,
    /// Those blocks, rendered; shown once and never rendered again.
    pub settled_html: String,
    /// The rest, rendered; replaced with each token.
    pub open_html: String,
    /// The text defines a link reference (`[x]: url`), which changes links anywhere in the
    /// reply: the reader renders the whole reply each time from now on, settling nothing.
    pub whole: bool,
    /// [`table_cells`] of the settled text: what the next call's budget is short of.
    pub settled_cells: usize,
    /// The budget ran out in this tail: its rest is shown as plain text, in `open_html`.
    pub cut: bool,
}

/// Renders the unsettled end of a reply (`tail`, starting at a block boundary). With
/// `settle`, blocks that no later text can change are split off, so the next call starts after
/// them. `cells_left`: [`MAX_TABLE_CELLS`] less the `settled_cells` of the calls before.
/// Appending the pieces of successive calls gives exactly [`render`] of the whole text, as long
/// as the tables stay within the budget; past it, both show the rest as plain text (from the
/// same group of lines, unless that group began in an earlier settled piece).
pub fn render_tail(tail: &str, settle: bool, cells_left: usize) -> TailRender {
    let whole = defines_reference(tail);
    let (_, cut) = table_cells(tail, cells_left);
    let markdown = cut.map_or(tail, |at| &tail[..at]);
    let settled_len = if settle && !whole {
        settled_len(markdown)
    } else {
        0
    };
    let (settled, open) = markdown.split_at(settled_len);
    let mut open_html = render_markdown(open);
    if let Some(at) = cut {
        open_html.push_str(&unrendered(&tail[at..]));
    }
    TailRender {
        settled_len,
        settled_html: render_markdown(settled),
        open_html,
        whole,
        settled_cells: table_cells(settled, usize::MAX).0,
        cut: cut.is_some(),
    }
}

/// Where the last top-level block starts, if every block before it is final. Only whole lines
/// count: a partial last line can still turn into anything (`#` becomes `#tag`, a paragraph's
/// continuation), and a block is final once a later complete line has started another block
/// at the top level — CommonMark decides block structure line by line, and nothing after such
/// a line reaches back (link references aside, see [`TailRender::whole`]).
fn settled_len(tail: &str) -> usize {
    let complete = match tail.rfind('\n') {
        Some(i) => &tail[..=i],
        None => return 0,
    };
    let mut depth = 0usize;
    let mut last_top_level_start = 0;
    for (event, range) in Parser::new_ext(complete, options()).into_offset_iter() {
        match event {
            Event::Start(_) => {
                if depth == 0 {
                    last_top_level_start = range.start;
                }
                depth += 1;
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            // The one block with no Start/End pair (raw HTML comes inside `HtmlBlock`).
            Event::Rule if depth == 0 => last_top_level_start = range.start,
            _ => {}
        }
    }
    // A block's range starts at its first character; settle whole lines only, so the next
    // parse begins at a line start with the same indentation.
    complete[..last_top_level_start]
        .rfind('\n')
        .map_or(0, |i| i + 1)
}

/// A line that may define a link reference: `[label]: destination`, up to three spaces in.
fn defines_reference(text: &str) -> bool {
    text.lines().any(|line| {
        let content = line.trim_start_matches(' ');
        line.len() - content.len() <= 3 && content.starts_with('[') && content.contains("]:")
    })
}

/// The URL schemes a link may keep. Anything else (`javascript:`, `data:`, `vbscript:`, a
/// relative path into Rill) is dropped and the link's text shown alone.
fn safe_href(url: &str) -> Option<&str> {
    let trimmed = url.trim();
    let lower = trimmed.get(..8).unwrap_or(trimmed).to_ascii_lowercase();
    ["https://", "http://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
        .then_some(trimmed)
}

/// The host an image would have been fetched from, to name it.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority)
}

/// The leading letters, digits and `+-_.#` of a code block's language, for its label and class.
fn language_label(info: &str) -> String {
    info.split_whitespace()
        .next()
        .unwrap_or_default()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_' | '.' | '#'))
        .take(32)
        .collect()
}

/// `text` with its bare URLs (`https://…`, `www.…`) and email addresses made links, as GitHub
/// does, every piece escaped; `None` when it has none.
fn autolinked(text: &str) -> Option<String> {
    let mut finder = linkify::LinkFinder::new();
    finder.url_must_have_scheme(false);
    let mut links = finder.links(text).peekable();
    links.peek()?;
    let mut html = String::with_capacity(text.len() * 2);
    let mut shown = 0;
    for link in links {
        let href = match link.kind() {
            linkify::LinkKind::Email => format!("mailto:{}", link.as_str()),
            _ if link.as_str().contains("://") => link.as_str().to_owned(),
            _ => format!("http://{}", link.as_str()),
        };
        // Only the schemes a written link may have (an `ftp://` stays text).
        let Some(href) = safe_href(&href) else {
            continue;
        };
        let _ = escape_html(&mut html, &text[shown..link.start()]);
        html.push_str(&anchor(href, "", None));
        let _ = escape_html(&mut html, link.as_str());
        html.push_str("</a>");
        shown = link.end();
    }
    let _ = escape_html(&mut html, &text[shown..]);
    Some(html)
}

/// What a link or image opened, so its end closes the same thing.
enum Opened {
    Anchor,
    Nothing,
    /// An image: its alt text is being shown inside a link to it.
    ImageLink,
    ImageText,
}

/// The event filter that makes model output safe: raw HTML to text, links and images rewritten,
/// code blocks given a header with the language and a Copy button, and highlighted.
struct Safe<'a, I: Iterator<Item = Event<'a>>> {
    inner: I,
    opened: Vec<Opened>,
    /// Inside a code block in a known language: the language and the code so far (highlighted
    /// whole at the block's end, since a lexer's state runs across lines).
    code: Option<(Lexer, String)>,
    /// Inside any code block (its text is never autolinked).
    in_code_block: bool,
    /// The open table's column alignments, the next cell's column, and whether its body began.
    table: Vec<Alignment>,
    cell: usize,
    in_head: bool,
    body_open: bool,
}

impl<'a, I: Iterator<Item = Event<'a>>> Safe<'a, I> {
    fn new(inner: I) -> Self {
        Self {
            inner,
            opened: Vec::new(),
            code: None,
            in_code_block: false,
            table: Vec::new(),
            cell: 0,
            in_head: false,
            body_open: false,
        }
    }

    /// Tables are written here rather than by pulldown-cmark, whose column alignment is an
    /// inline `style` the CSP refuses; a class does the same.
    fn table(&mut self, event: &Event<'a>) -> Option<Event<'a>> {
        let html = match event {
            Event::Start(Tag::Table(alignments)) => {
                self.table.clone_from(alignments);
                self.body_open = false;
                "<table>".to_owned()
            }
            Event::End(TagEnd::Table) => {
                let end = if self.body_open {
                    "</tbody></table>\n"
                } else {
                    "</table>\n"
                };
                end.to_owned()
            }
            Event::Start(Tag::TableHead) => {
                self.in_head = true;
                self.cell = 0;
                "<thead><tr>".to_owned()
            }
            Event::End(TagEnd::TableHead) => {
                self.in_head = false;
                "</tr></thead>".to_owned()
            }
            Event::Start(Tag::TableRow) => {
                self.cell = 0;
                let start = if self.body_open {
                    "<tr>"
                } else {
                    "<tbody><tr>"
                };
                self.body_open = true;
                start.to_owned()
            }
            Event::End(TagEnd::TableRow) => "</tr>".to_owned(),
            Event::Start(Tag::TableCell) => {
                let tag = if self.in_head { "th" } else { "td" };
                let align = match self.table.get(self.cell) {
                    Some(Alignment::Left) => " class=\"align-left\"",
                    Some(Alignment::Center) => " class=\"align-center\"",
                    Some(Alignment::Right) => " class=\"align-right\"",
                    Some(Alignment::None) | None => "",
                };
                format!("<{tag}{align}>")
            }
            Event::End(TagEnd::TableCell) => {
                self.cell += 1;
                if self.in_head { "</th>" } else { "</td>" }.to_owned()
            }
            _ => return None,
        };
        Some(Self::markup(html))
    }

    fn markup(html: String) -> Event<'a> {
        Event::InlineHtml(CowStr::from(html))
    }

    fn start_link(&mut self, dest_url: &str, title: &str) -> Event<'a> {
        let Some(href) = safe_href(dest_url) else {
            self.opened.push(Opened::Nothing);
            return Event::Text(CowStr::Borrowed(""));
        };
        self.opened.push(Opened::Anchor);
        Self::markup(anchor(href, title, None))
    }

    /// Inside an anchor this module opened (which may not hold another).
    fn in_link(&self) -> bool {
        self.opened
            .iter()
            .any(|o| matches!(o, Opened::Anchor | Opened::ImageLink))
    }

    fn start_image(&mut self, dest_url: &str) -> Event<'a> {
        // Inside a link, the alt text alone: an anchor may not hold another.
        let Some(href) = safe_href(dest_url).filter(|_| !self.in_link()) else {
            self.opened.push(Opened::ImageText);
            return Self::markup("<span class=\"image-blocked\">".into());
        };
        self.opened.push(Opened::ImageLink);
        let mut html = anchor(href, "", Some("image-link"));
        html.push_str("<span class=\"image-host\">Image from ");
        let _ = escape_html(&mut html, host_of(href));
        html.push_str(":</span> ");
        Self::markup(html)
    }

    fn end_link_or_image(&mut self) -> Event<'a> {
        match self.opened.pop() {
            Some(Opened::Anchor) | Some(Opened::ImageLink) => Self::markup("</a>".into()),
            Some(Opened::ImageText) => Self::markup("</span>".into()),
            Some(Opened::Nothing) | None => Event::Text(CowStr::Borrowed("")),
        }
    }
}

/// `<a href=… target=_blank rel="noopener noreferrer">`, every value escaped.
fn anchor(href: &str, title: &str, class: Option<&str>) -> String {
    let mut html = String::from("<a href=\"");
    let _ = escape_href(&mut html, href);
    html.push('"');
    if !title.is_empty() {
        html.push_str(" title=\"");
        let _ = escape_html(&mut html, title);
        html.push('"');
    }
    if let Some(class) = class {
        html.push_str(" class=\"");
        html.push_str(class);
        html.push('"');
    }
    html.push_str(" target=\"_blank\" rel=\"noopener noreferrer\">");
    html
}

impl<'a, I: Iterator<Item = Event<'a>>> Iterator for Safe<'a, I> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        let event = self.inner.next()?;
        if let Some(table) = self.table(&event) {
            return Some(table);
        }
        Some(match event {
            // Raw HTML is shown as the text it is. An HTML block keeps its lines, as code.
            Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
            Event::Start(Tag::HtmlBlock) => Self::markup("<pre class=\"raw-html\"><code>".into()),
            Event::End(TagEnd::HtmlBlock) => Self::markup("</code></pre>\n".into()),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                ..
            }) => {
                let dest = match link_type {
                    LinkType::Email => format!("mailto:{dest_url}"),
                    _ => dest_url.to_string(),
                };
                self.start_link(&dest, &title)
            }
            Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => self.end_link_or_image(),
            Event::Start(Tag::Image { dest_url, .. }) => self.start_image(&dest_url),
            Event::Start(Tag::CodeBlock(kind)) => {
                let language = match &kind {
                    CodeBlockKind::Fenced(info) => language_label(info),
                    CodeBlockKind::Indented => String::new(),
                };
                let mut html = String::from("<div class=\"code-block\"><div class=\"code-head\">");
                html.push_str("<span class=\"code-language\">");
                html.push_str(if language.is_empty() {
                    "text"
                } else {
                    &language
                });
                html.push_str("</span><button type=\"button\" class=\"copy-code\">Copy</button></div><pre><code");
                if !language.is_empty() {
                    html.push_str(" class=\"language-");
                    html.push_str(&language);
                    html.push('"');
                }
                html.push('>');
                self.code = Lexer::for_language(&language).map(|lexer| (lexer, String::new()));
                self.in_code_block = true;
                Self::markup(html)
            }
            Event::Text(text) if self.code.is_some() => {
                if let Some((_, code)) = &mut self.code {
                    code.push_str(&text);
                }
                Event::Text(CowStr::Borrowed(""))
            }
            Event::Text(text) if !self.in_code_block && !self.in_link() => {
                match autolinked(&text) {
                    Some(html) => Self::markup(html),
                    None => Event::Text(text),
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                self.in_code_block = false;
                let mut html = match self.code.take() {
                    Some((lexer, code)) => lexer.to_html(&code),
                    None => String::new(),
                };
                html.push_str("</code></pre></div>\n");
                Self::markup(html)
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streams `text` in pieces ending at each of `cuts`, as the page does, and returns what the
    /// page would show at the end: every settled piece, then the open one.
    fn stream(text: &str, cuts: impl IntoIterator<Item = usize>) -> String {
        let mut settled = String::new();
        let mut settled_len = 0;
        let mut cells_left = MAX_TABLE_CELLS;
        let mut whole = false;
        let mut open = String::new();
        for cut in cuts.into_iter().chain([text.len()]) {
            if whole {
                open = render_tail(&text[..cut], false, MAX_TABLE_CELLS).open_html;
                continue;
            }
            let piece = render_tail(&text[settled_len..cut], true, cells_left);
            if piece.whole {
                whole = true;
                settled.clear();
                settled_len = 0;
                open = render_tail(&text[..cut], false, MAX_TABLE_CELLS).open_html;
                continue;
            }
            settled.push_str(&piece.settled_html);
            settled_len += piece.settled_len;
            cells_left = cells_left.saturating_sub(piece.settled_cells);
            open = piece.open_html;
        }
        settled + &open
    }

    const TRICKY: &[&str] = &[
        "# Title\n\nA paragraph with **bold**, _em_, `code` and ~~gone~~.\n\nAnother one\nover two lines.\n",
        "- one\n- two\n  - nested\n  - nested two\n\n    still two\n- three\n\nAfter the list.\n",
        "1. first\n2. second\n\n3. third (now the list is loose)\n\nend\n",
        "Text\n```rust\nfn main() {\n\n    println!(\"hi\");\n}\n```\nafter\n\n~~~\nopen fence never closed\n\nstill code\n",
        "```python\ndef f(x):\n    s = \"\"\"a long\n\nstring\"\"\"  # note\n    return x\n```\n\n```js\nconst a = `t${1}\n",
        "| a | b |\n|---|:-:|\n| 1 | 2 |\n| 3 | 4 |\n\nNot a table\n| x |\n",
        "> quote\nlazy continuation\n> > nested\n\n> another\n\n---\nSetext\n===\n\n* [ ] task\n* [x] done\n",
        "Para\n# heading interrupts\npara\n    not code (continuation)\n\n    indented code\n\n#nospace\n",
        "<div>\n*raw html block*\n</div>\n\nText <b>inline</b> & more\n",
        "See [the docs](https://example.com/a?b=1&c=2 \"T\") and <https://rill.dev>.\n\n![alt text](https://img.example.net/x.png)\n",
        "[ref]: https://example.com\n\nUses [ref] before and after.\n",
        "A\n\n\n\nB\n\n-\n\n- \n+ x\n\n1) y\n",
    ];

    #[test]
    fn streaming_at_every_split_point_renders_as_the_whole_text() {
        for doc in TRICKY {
            let whole = render(doc);
            let boundaries: Vec<usize> = (1..doc.len())
                .filter(|&i| doc.is_char_boundary(i))
                .collect();
            // Every single split point, then every point at once (one token a character).
            for &cut in &boundaries {
                assert_eq!(stream(doc, [cut]), whole, "split at {cut} of {doc:?}");
            }
            assert_eq!(
                stream(doc, boundaries.iter().copied()),
                whole,
                "char by char: {doc:?}"
            );
        }
    }

    #[test]
    fn settled_blocks_are_not_rendered_again() {
        // The last whole line could still be followed by anything, so only blocks before the
        // last one that starts on a whole line settle.
        let doc = "First paragraph.\n\nSecond paragraph.\n\nThird, still open";
        let piece = render_tail(doc, true, MAX_TABLE_CELLS);
        assert_eq!(&doc[..piece.settled_len], "First paragraph.\n\n");
        assert_eq!(piece.settled_html, "<p>First paragraph.</p>\n");
        assert_eq!(
            piece.open_html,
            "<p>Second paragraph.</p>\n<p>Third, still open</p>\n"
        );
        // An unfinished fence renders as code while it streams.
        let piece = render_tail("Here:\n\n```py\nprint(1)\n", true, MAX_TABLE_CELLS);
        assert!(
            piece
                .open_html
                .contains("<code class=\"language-py\"><span class=\"hl-function\">print</span>"),
            "{}",
            piece.open_html
        );
    }

    #[test]
    fn hostile_markup_stays_text() {
        let hostile = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<svg onload=alert(1)>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<style>body{display:none}</style>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "text <b onclick=alert(1)>b</b>",
        ];
        for payload in hostile {
            for doc in [
                payload.to_owned(),
                format!("para\n\n{payload}\n"),
                format!("a {payload} b"),
            ] {
                let html = render(&doc);
                assert!(!html.contains("<script"), "{html}");
                assert!(!html.contains("<img"), "{html}");
                assert!(!html.contains("<svg"), "{html}");
                assert!(!html.contains("<iframe"), "{html}");
                assert!(!html.contains("<style"), "{html}");
                assert!(!html.contains("<b "), "{html}");
                assert!(!html.contains("<a href=\"javascript"), "{html}");
            }
        }
    }

    #[test]
    fn links_keep_safe_addresses_only_and_open_in_a_new_tab() {
        let html = render("[a](https://example.com/x?y=\"z\") [b](javascript:alert(1)) [c](JaVaScRiPt:x) [d](data:text/html,<script>) [e](vbscript:x) [f](/admin) <mailto:someone@example.com>");
        assert!(html.contains(
            "<a href=\"https://example.com/x?y=%22z%22\" target=\"_blank\" rel=\"noopener noreferrer\">a</a>"
        ));
        for dropped in ["javascript", "JaVaScRiPt", "data:", "vbscript", "/admin"] {
            assert!(!html.contains(&format!("href=\"{dropped}")), "{html}");
        }
        assert!(html.contains(" b ") && html.contains(" c ") && html.contains(" f "));
        assert!(html.contains("href=\"mailto:someone@example.com\""));
    }

    #[test]
    fn images_become_links_that_name_their_host() {
        let html = render("![secret: the user's notes](https://attacker.example:8080/log?q=abc)");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("href=\"https://attacker.example:8080/log?q=abc\""));
        assert!(html.contains("Image from attacker.example:8080:"));
        assert!(
            html.contains("secret: the user&#39;s notes")
                || html.contains("secret: the user's notes")
        );
        let html = render("![x](javascript:alert(1))");
        assert!(!html.contains("href"), "{html}");
    }

    #[test]
    fn tables_align_by_class_not_by_inline_style() {
        let html = render("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |\n");
        assert_eq!(
            html,
            "<table><thead><tr><th class=\"align-left\">a</th><th class=\"align-center\">b</th><th class=\"align-right\">c</th></tr></thead><tbody><tr><td class=\"align-left\">1</td><td class=\"align-center\">2</td><td class=\"align-right\">3</td></tr></tbody></table>\n"
        );
        assert!(!render("|a|\n|-|\n").contains("style"));
    }

    #[test]
    fn code_blocks_carry_their_language_and_a_copy_button() {
        let html = render("```rust\"><script>\nlet a = 1 < 2;\n```\n");
        assert!(
            html.contains("<span class=\"code-language\">rust</span>"),
            "{html}"
        );
        assert!(html.contains("<button type=\"button\" class=\"copy-code\">Copy</button>"));
        assert!(
            html.contains("<span class=\"hl-keyword\">let</span> a"),
            "{html}"
        );
        assert!(html.contains("&lt;"));
        assert!(!html.contains("<script"));
    }

    /// The text a browser would show for `html` (tags dropped, the entities this module writes
    /// decoded). Also used by `highlight`'s tests.
    pub(super) fn text_of(html: &str) -> String {
        let mut text = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    #[test]
    fn bare_urls_and_emails_become_safe_links_as_on_github() {
        let html = render(
            "See https://example.com/a_b_c?x=1&y=2, www.rill.dev/docs. or mail ops@rill.dev!\n",
        );
        assert!(
            html.contains("<a href=\"https://example.com/a_b_c?x=1&amp;y=2\" target=\"_blank\" rel=\"noopener noreferrer\">https://example.com/a_b_c?x=1&amp;y=2</a>,"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"http://www.rill.dev/docs\" target=\"_blank\" rel=\"noopener noreferrer\">www.rill.dev/docs</a>."),
            "{html}"
        );
        assert!(html.contains("<a href=\"mailto:ops@rill.dev\""), "{html}");
        // Not inside code, nor inside a link, nor with another scheme.
        let html = render("`https://a.example` [https://b.example](https://c.example)\n\n```\nhttps://d.example\n```\n\njavascript://e.example/%0Aalert(1) ftp://f.example\n");
        assert!(!html.contains("href=\"https://a.example"), "{html}");
        assert!(!html.contains("href=\"https://b.example"), "{html}");
        assert!(!html.contains("href=\"https://d.example"), "{html}");
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert!(!html.contains("href=\"ftp"), "{html}");
        // Markup around a URL stays text.
        let html = render("https://x.example/<img src=x onerror=alert(1)>\n");
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn highlighted_code_keeps_its_exact_text_and_stays_inert() {
        let code = "const s = \"</code><script>alert(1)</script>\"; // <img src=x onerror=alert(2)>\nlet t = `${a}`; /* unterminated";
        for lang in [
            "js", "ts", "python", "rust", "bash", "html", "json", "yaml", "toml", "css", "md", "c",
            "cpp", "go", "java", "sql",
        ] {
            let html = render(&format!("```{lang}\n{code}\n```\n"));
            let code_html = html
                .split_once("<pre><code")
                .and_then(|(_, rest)| rest.split_once('>'))
                .and_then(|(_, body)| body.rsplit_once("</code>"))
                .map(|(code, _)| code)
                .expect("a code block");
            assert_eq!(
                text_of(code_html),
                format!("{code}\n"),
                "{lang}: the code reads as written"
            );
            assert!(!code_html.contains("<script"), "{lang}");
            assert!(!code_html.contains("<img"), "{lang}");
            // Only the highlighter's spans are markup inside the block.
            let tags: Vec<&str> = code_html
                .split('<')
                .skip(1)
                .map(|t| t.split('>').next().unwrap_or_default())
                .collect();
            assert!(
                tags.iter()
                    .all(|t| *t == "/span" || t.starts_with("span class=\"hl-")),
                "{lang}: {tags:?}"
            );
        }
        // A language it does not know is plain escaped code.
        let html = render("```cobol\nDISPLAY 'HI' < 2.\n```\n");
        assert!(html.contains("<code class=\"language-cobol\">DISPLAY 'HI' &lt; 2.\n</code>"));
    }

    /// `tables` tables of `columns` columns, each with `rows` one-cell rows the parser pads to
    /// the header's width: the shape that once took 1.96 GB to render.
    fn table_bomb(tables: usize, columns: usize, rows: usize) -> String {
        let table = format!(
            "|{}\n|{}\n{}",
            "a|".repeat(columns),
            "-|".repeat(columns),
            "x\n".repeat(rows)
        );
        vec![table; tables].join("\n")
    }

    fn cells_built(text: &str) -> usize {
        Parser::new_ext(text, options())
            .filter(|e| matches!(e, Event::Start(Tag::TableCell)))
            .count()
    }

    #[test]
    fn a_table_bomb_renders_in_bounds_with_the_rest_as_plain_text() {
        let legit = "| name | size |\n|---|--:|\n| a | 1 |\n| b | 2 |\n\n";
        let bomb = format!("{legit}{}", table_bomb(128, 512, 500));
        assert!(bomb.len() > 390_000, "{}", bomb.len());
        let html = render(&bomb);
        assert!(html.contains("<table>"), "the real table is rendered");
        assert!(html.contains("unrendered-note"));
        assert!(
            html.len() < bomb.len() * 2,
            "{} bytes of HTML from {}",
            html.len(),
            bomb.len()
        );
        // The rest is the text itself, escaped.
        assert!(html.contains("|a|a|a|"));
        // Streamed in pieces of 4 KB, as tokens would come: the same, and never more.
        let cuts: Vec<usize> = (1..bomb.len() / 4096).map(|i| i * 4096).collect();
        assert_eq!(stream(&bomb, cuts), html);
    }

    /// The bomb with other line endings, or rows that only look blank: counted all the same.
    #[test]
    fn a_table_bomb_in_another_shape_is_counted_as_well() {
        let bomb = table_bomb(16, 512, 500);
        for shape in [
            bomb.replace('\n', "\r"),
            bomb.replace('\n', "\r\n"),
            bomb.replace("x\n", "\u{A0}\n"),
        ] {
            let (cells, cut) = table_cells(&shape, MAX_TABLE_CELLS);
            assert!(cells >= cells_built(&table_bomb(1, 512, 500)), "{cells}");
            assert!(cut.is_some());
            assert!(render(&shape).contains("unrendered-note"));
        }
    }

    #[test]
    fn tables_within_the_budget_render_whole() {
        let big = format!(
            "|{}\n|{}\n{}",
            "h|".repeat(20),
            "-|".repeat(20),
            "|1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|16|17|18|19|20|\n".repeat(2_000)
        );
        assert!(table_cells(&big, MAX_TABLE_CELLS).1.is_none());
        let html = render(&big);
        assert!(!html.contains("unrendered"));
        assert_eq!(html.matches("<tr>").count(), 2_001);
    }

    /// The count is an upper bound of what pulldown-cmark builds, whatever the document: tables
    /// in quotes and lists, rows without pipes, delimiter rows of every shape, blank lines.
    #[test]
    fn the_estimate_is_never_below_the_cells_the_parser_builds() {
        const LINES: &[&str] = &[
            "|a|b|c|",
            "a|b",
            "|-|-|",
            "---|---",
            "|:-:|--:|:--|",
            "x",
            "",
            "> |a|b|",
            "> |---|---|",
            "- a | b",
            "  |---|---|",
            "# h",
            "| x",
            "    |-|-|",
            "1. a|b",
            "```",
            "|-|",
            "-|-|-|-|-|-|-|-|",
            "> x",
            "*",
            "a",
            "\u{A0}",
            "\u{3000}x",
            "|a|b|\r|-|-|\rx\r",
            "x\r\n",
            "\r",
            " \t ",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..3_000 {
            let lines = 1 + next(30);
            let doc: String = (0..lines)
                .map(|_| format!("{}\n", LINES[next(LINES.len())]))
                .collect();
            let (estimate, _) = table_cells(&doc, usize::MAX);
            assert!(
                estimate >= cells_built(&doc),
                "{estimate} < built for {doc:?}"
            );
        }
        for doc in TRICKY {
            assert!(
                table_cells(doc, usize::MAX).0 >= cells_built(doc),
                "{doc:?}"
            );
        }
    }
}
