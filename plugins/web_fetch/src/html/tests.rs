//! The converter on real-world shapes of markup, well-formed and not.

use super::*;

fn text(html: &str) -> String {
    html_to_text(html, "https://example.com/docs/page.html").text
}

#[test]
fn keeps_words_in_order_and_collapses_whitespace() {
    assert_eq!(
        text("<p>Hello,\n   <b>brave</b>   new\tworld</p>"),
        "Hello, brave new world"
    );
}

#[test]
fn separates_paragraphs_and_headings() {
    let html = "<h1>Title</h1><p>One.</p><p>Two.</p><h2>Sub</h2>Three";
    assert_eq!(text(html), "# Title\n\nOne.\n\nTwo.\n\n## Sub\n\nThree");
}

#[test]
fn drops_scripts_styles_and_head() {
    let html = "<html><head><title> My  Page </title><style>p{color:red}</style>\
                <script>if (a < b) { document.write('<p>x</p>') }</script></head>\
                <body><p>Visible</p><noscript>enable js</noscript></body></html>";
    let doc = html_to_text(html, "https://example.com/");
    assert_eq!(doc.title.as_deref(), Some("My Page"));
    assert_eq!(doc.text, "Visible");
}

#[test]
fn renders_lists_with_nesting_and_numbers() {
    let html = "<ul><li>a</li><li>b<ol start=\"3\"><li>c</li><li>d</li></ol></li></ul><p>end</p>";
    assert_eq!(text(html), "- a\n- b\n  3. c\n  4. d\n\nend");
}

#[test]
fn resolves_links_against_the_page() {
    let html = "<p>See <a href=\"../guide?x=1&amp;y=2\">the guide</a>, \
                <a href=\"/about\">about</a>, <a href=\"#top\">top</a> and \
                <a href=\"https://other.org/\">https://other.org/</a>.</p>";
    assert_eq!(
        text(html),
        "See [the guide](https://example.com/guide?x=1&y=2), \
         [about](https://example.com/about), top and https://other.org/."
    );
}

#[test]
fn link_without_text_leaves_nothing() {
    assert_eq!(text("a<a href=\"/x\"> </a>b"), "a b");
}

#[test]
fn keeps_preformatted_text() {
    let html = "<p>Code:</p><pre>fn main() {\n    <a href=\"/run\">run</a>();\n}</pre><p>after</p>";
    assert_eq!(
        text(html),
        "Code:\n\n```\nfn main() {\n    run();\n}\n```\n\nafter"
    );
}

#[test]
fn decodes_entities() {
    assert_eq!(
        text("<p>Tom &amp; Jerry &mdash; &#8220;caf&eacute;&#x201D; &nbsp;&unknown; 5&lt;6</p>"),
        "Tom & Jerry — “café” &unknown; 5<6"
    );
}

#[test]
fn tables_become_rows_of_cells() {
    let html = "<table><tr><th>Name</th><th>Age</th></tr><tr><td>Ann</td><td>31</td></tr></table>";
    assert_eq!(text(html), "Name | Age\nAnn | 31");
}

#[test]
fn line_breaks_and_comments() {
    assert_eq!(
        text("one<br>two<!-- <p>hidden</p> --><br/>three"),
        "one\ntwo\nthree"
    );
}

#[test]
fn malformed_markup_degrades_to_text() {
    assert_eq!(text("a < b and <p class=\"x"), "a < b and");
    assert_eq!(text("<div =oops>ok</div>"), "ok");
    assert_eq!(text("<<>>"), "<<>>");
    assert_eq!(text("<script>never closed"), "");
}

#[test]
fn drops_navigation_and_buttons() {
    let html = "<nav><ul><li><a href=/a>A</a></li></ul></nav><main><h1>Doc</h1>\
                <button>Copy</button><p>Body</p></main>";
    assert_eq!(text(html), "# Doc\n\nBody");
}

#[test]
fn images_show_their_alt_text() {
    assert_eq!(
        text("<p><img src=x.png alt=\"A cat\"> sleeping</p>"),
        "[image: A cat] sleeping"
    );
}

#[test]
fn handles_multibyte_text_near_tags() {
    assert_eq!(text("<p>日本語</p><p>émoji 🎉</p>"), "日本語\n\némoji 🎉");
}
