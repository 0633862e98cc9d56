"""The documentation holds together: links resolve, the README stays short, and every directive
the module has is documented in docs/directives.md (and nothing else is).

    make static          (or: /usr/bin/python3 -m pytest -q -p no:cacheprovider t/static)

Standard library and pytest only; nothing needs to be built.

1. Every relative link in README.md, docs/*.md, t/README.md and bench/*.md names a file or folder
   that exists, and every #anchor a heading of the file it points into, with GitHub's anchor
   rules: the heading's text as rendered, lower-cased, punctuation dropped except '-' and '_',
   spaces to '-', letters of any script kept (CJK too), and a repeated heading '-1', '-2', ...
2. README.md is under 300 lines.
3. The directives in src (the `ngx_string("dingtalk...")` entries of the ngx_command_t table) and
   the `## name` sections of docs/directives.md are the same set; each section has its
   **Syntax:**, **Default:** and **Context:** lines, the Context line names the contexts the
   table allows, and the README's index links to each section.
"""

import glob
import os
import re
import unicodedata
import urllib.parse

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README_MAX_LINES = 300
DOCS = ("README.md", "docs/*.md", "t/README.md", "bench/*.md")
DIRECTIVES_DOC = "docs/directives.md"


def read(rel):
    with open(os.path.join(REPO, rel), encoding="utf-8") as f:
        return f.read()


def doc_files():
    found = []
    for pattern in DOCS:
        found += sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, pattern)))
    return found


# --- markdown, as much of it as links and headings need ------------------------------------------

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def prose_lines(text):
    """(line number, line) of every line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
            fence = None
        elif fence is None:
            yield number, line


CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def without_code_spans(line):
    return CODE_SPAN.sub(" ", line)


HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")


def rendered_text(heading):
    """The text GitHub shows for a heading's markdown (what its anchor is made from)."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)  # backslash escapes


def slug(heading):
    """GitHub's anchor for a heading (github-slugger): lower case; letters, digits, marks, '_'
    and '-' kept, spaces to '-', anything else dropped."""
    out = []
    for c in rendered_text(heading).lower():
        if c == " ":
            out.append("-")
        elif c == "-" or unicodedata.category(c)[0] in "LNM" or unicodedata.category(c) == "Pc":
            out.append(c)
    return "".join(out)


def anchors(text):
    """The anchors of a document's headings, repeats numbered as GitHub numbers them."""
    seen, result = {}, []
    for _, line in prose_lines(text):
        m = HEADING.match(line)
        if not m:
            continue
        base = candidate = slug(m.group(2))
        while candidate in seen:
            seen[base] += 1
            candidate = f"{base}-{seen[base]}"
        seen[candidate] = 0
        result.append(candidate)
    return result


INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
                         r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(\S+)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def links(text):
    """(line number, target) of every link outside code."""
    for number, line in prose_lines(text):
        m = REFERENCE.match(line)
        if m:
            yield number, m.group(1).strip("<>")
            continue
        for m in INLINE_LINK.finditer(without_code_spans(line)):
            yield number, m.group(1).strip("<>")


def broken_links(rel):
    problems = []
    here = os.path.dirname(os.path.join(REPO, rel))
    for number, target in links(read(rel)):
        if not target or SCHEME.match(target):
            continue  # http(s):, mailto: ...: not ours to check here
        path, _, fragment = target.partition("#")
        path = urllib.parse.unquote(path)
        full = os.path.normpath(os.path.join(here, path)) if path else os.path.join(REPO, rel)
        where = f"{rel}:{number}: {target}"
        if os.path.commonpath([REPO, full]) != REPO:
            problems.append(f"{where}: points outside the repository")
        elif not os.path.exists(full):
            problems.append(f"{where}: no such file")
        elif fragment:
            if not full.endswith(".md"):
                problems.append(f"{where}: an anchor into a file that is not markdown")
            elif urllib.parse.unquote(fragment) not in anchors(read(os.path.relpath(full, REPO))):
                problems.append(f"{where}: no heading with that anchor")
    return problems


# --- the directives in the source ----------------------------------------------------------------

CONTEXTS = {  # nginx's flags, in the order nginx.org's Context lines name them
    "NGX_HTTP_MAIN_CONF": "http", "NGX_HTTP_SRV_CONF": "server", "NGX_HTTP_SIF_CONF": "if in server",
    "NGX_HTTP_LOC_CONF": "location", "NGX_HTTP_LIF_CONF": "if in location",
    "NGX_HTTP_LMT_CONF": "limit_except", "NGX_HTTP_UPS_CONF": "upstream",
}
COMMAND = re.compile(r"\{\s*ngx_string\(\s*\"(dingtalk\w*)\"\s*\)\s*,\s*([^,]+),")


def source_directives():
    """{name: [contexts]} from the ngx_command_t table(s) in src/."""
    found = {}
    for path in sorted(glob.glob(os.path.join(REPO, "src", "*.cpp"))):
        with open(path, encoding="utf-8") as f:
            source = f.read()
        # named sets of flags the table uses, as "constexpr ngx_uint_t kAny = A | B | C;"
        named = {k: v for k, v in re.findall(r"constexpr\s+ngx_uint_t\s+(\w+)\s*=\s*([^;]+);",
                                                source)}
        for table in re.finditer(r"ngx_command_t\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)ngx_null_command",
                                 source, re.S):
            for name, flags in COMMAND.findall(table.group(1)):
                flags = {f.strip() for f in flags.split("|")}
                flags |= {f.strip() for n in flags & set(named) for f in named[n].split("|")}
                found[name] = [ctx for flag, ctx in CONTEXTS.items() if flag in flags]
    assert found, "no ngx_command_t table with ngx_string(\"dingtalk...\") entries in src/*.cpp"
    return found


def directive_sections():
    """{heading: section text} of docs/directives.md's level-2 headings."""
    sections, name = {}, None
    for _, line in prose_lines(read(DIRECTIVES_DOC)):
        m = HEADING.match(line)
        if m and len(m.group(1)) <= 2:
            name = rendered_text(m.group(2)).strip() if len(m.group(1)) == 2 else None
            if name is not None:
                assert name not in sections, f"{DIRECTIVES_DOC}: ## {name} twice"
                sections[name] = []
        elif name is not None:
            sections[name].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


# --- the tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rel", doc_files())
def test_relative_links_resolve(rel):
    problems = broken_links(rel)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_documents_exist():
    for rel in ("README.md", DIRECTIVES_DOC, "t/README.md"):
        assert rel in doc_files(), f"{rel} is missing"


def test_readme_is_short():
    lines = read("README.md").count("\n")
    assert lines < README_MAX_LINES, (
        f"README.md has {lines} lines; keep it under {README_MAX_LINES}: details go in docs/")


def test_every_directive_has_a_section_in_nginx_form():
    directives, sections = source_directives(), directive_sections()
    missing = sorted(set(directives) - set(sections))
    assert not missing, f"{DIRECTIVES_DOC} has no '## name' section for: {missing}"
    unknown = sorted(set(sections) - set(directives))
    assert not unknown, f"{DIRECTIVES_DOC} documents what the module does not have: {unknown}"
    for name, contexts in directives.items():
        text = sections[name]
        syntax = re.search(r"^\*\*Syntax:\*\*[ \t]+`" + re.escape(name) + r"[ ;]", text, re.M)
        assert syntax, f"## {name}: no '**Syntax:** `{name} ...`' line"
        assert re.search(r"^\*\*Default:\*\*[ \t]+\S", text, re.M), f"## {name}: no **Default:** line"
        m = re.search(r"^\*\*Context:\*\*[ \t]+(.+?)\\?$", text, re.M)
        assert m, f"## {name}: no **Context:** line"
        named = [c.strip(" `") for c in m.group(1).split(",")]
        assert named == contexts, f"## {name}: Context {named}, the source allows {contexts}"


def test_readme_indexes_every_directive():
    directives = source_directives()
    readme = read("README.md")
    linked = set(re.findall(r"\]\(docs/directives\.md#([^)\s]+)\)", readme))
    missing = sorted(n for n in directives if slug(n) not in linked)
    assert not missing, f"README.md's directive index lacks: {missing}"
    stale = sorted(a for a in linked if a not in {slug(n) for n in directives})
    assert not stale, f"README.md links to directives that do not exist: {stale}"


def test_slugs_follow_github():
    """The anchor rules the link check relies on, on headings like this project's."""
    assert slug("Quick start (Debian 12)") == "quick-start-debian-12"
    assert slug("`dingtalk_token`") == "dingtalk_token"
    assert slug("DingTalk's error codes") == "dingtalks-error-codes"
    assert slug("Preview: dingtalk-render") == "preview-dingtalk-render"
    assert slug("Keyword robots (自定义关键词)") == "keyword-robots-自定义关键词"
    assert slug("🔥 告警中 (2)") == "-告警中-2"
    assert slug(r"\[FIRING:2\] kube-ops") == "firing2-kube-ops"
    assert anchors("# A\n## B\n## B\n```\n## B\n```\n## B\n") == ["a", "b", "b-1", "b-2"]
