#include "page.hpp"

namespace dingtalk
{

namespace
{

// Phone-first: one column, large tap targets, the system's font.
constexpr std::string_view kStyle =
    "body{font-family:system-ui,sans-serif;margin:0;padding:16px;max-width:560px;"
    "line-height:1.4;color:#1f2329;background:#fff}"
    "h1{font-size:1.3em;margin:0 0 12px}"
    "table{border-collapse:collapse;width:100%;margin:8px 0 16px}"
    "th,td{text-align:left;vertical-align:top;padding:4px 6px;border-bottom:1px solid #e5e6eb;"
    "word-break:break-all}"
    "th{width:35%;font-weight:600}"
    "label{display:block;margin:12px 0 4px}"
    "input,textarea{width:100%;box-sizing:border-box;font-size:1em;padding:8px}"
    "button{width:100%;margin-top:16px;padding:14px;font-size:1.1em;border:0;border-radius:6px;"
    "background:#d4380d;color:#fff}"
    ".ok{color:#237804}.refused{color:#a8071a}";

void open_page(std::string &out, std::string_view title)
{
    out.append("<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
               "<meta name=\"referrer\" content=\"no-referrer\"><title>");
    out.append(html_escape(title));
    out.append("</title><style>");
    out.append(kStyle);
    out.append("</style></head><body>\n");
}

void close_page(std::string &out)
{
    out.append("</body></html>\n");
}

void table(std::string &out, const PageLabels &rows)
{
    if (rows.empty()) {
        return;
    }
    out.append("<table>");
    for (const auto &[name, value] : rows) {
        out.append("<tr><th>").append(html_escape(name)).append("</th><td>");
        out.append(html_escape(value)).append("</td></tr>");
    }
    out.append("</table>\n");
}

void hidden(std::string &out, std::string_view name, std::string_view value)
{
    out.append("<input type=\"hidden\" name=\"").append(name).append("\" value=\"");
    out.append(html_escape(value)).append("\">");
}

void unit(std::string &out, std::int64_t n, const char *name)
{
    if (n > 0) {
        out.append(std::to_string(n)).append(name);
    }
}

} // namespace

std::string html_escape(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        switch (c) {
        case '&':
            out.append("&amp;");
            break;
        case '<':
            out.append("&lt;");
            break;
        case '>':
            out.append("&gt;");
            break;
        case '"':
            out.append("&quot;");
            break;
        case '\'':
            out.append("&#39;");
            break;
        default:
            if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') {
                out.push_back(c);
            }
        }
    }
    return out;
}

std::string duration_text(std::int64_t seconds)
{
    std::string out;
    unit(out, seconds / 86400, "天");
    unit(out, seconds % 86400 / 3600, "小时");
    unit(out, seconds % 3600 / 60, "分钟");
    if (out.empty()) {
        unit(out, seconds, "秒");
    }
    return out.empty() ? "0秒" : out;
}

std::string silence_duration_text(std::int64_t seconds, bool until_resolved)
{
    return until_resolved ? "直到恢复（最长" + duration_text(seconds) + "）"
                          : duration_text(seconds);
}

std::string confirm_page(const ConfirmPage &p)
{
    std::string out;
    open_page(out, "静默这条告警？");
    out.append("<h1>静默这条告警？</h1>\n<p>静默<b>");
    out.append(html_escape(p.duration)).append("</b>，最晚到 ");
    out.append(html_escape(p.ends)).append(" 结束。静默的是带有下表全部标签的告警：</p>\n");
    table(out, p.labels);
    // action "?": the page's own path without its query, so that the link's token (posted in
    // the form's hidden field) is not in the POST's request line, which nginx logs
    out.append("<form method=\"post\" action=\"?\">");
    hidden(out, "l", p.link_token);
    hidden(out, "t", p.form_token);
    // maxlength counts characters, the caps bytes: a Chinese character is three of them
    out.append("\n<label for=\"name\">您的姓名</label>"
               "<input id=\"name\" name=\"name\" maxlength=\"")
        .append(std::to_string(kMaxNameBytes / 3))
        .append("\" autocomplete=\"name\">"
                "\n<label for=\"comment\">备注</label>"
                "<textarea id=\"comment\" name=\"comment\" rows=\"3\" maxlength=\"")
        .append(std::to_string(kMaxCommentBytes / 3))
        .append("\"></textarea>\n<button type=\"submit\">静默");
    out.append(html_escape(p.duration)).append("</button></form>\n");
    close_page(out);
    return out;
}

std::string result_page(const ResultPage &p)
{
    std::string out;
    open_page(out, p.heading);
    out.append(p.ok ? "<h1 class=\"ok\">" : "<h1 class=\"refused\">");
    out.append(html_escape(p.heading)).append("</h1>\n<p>");
    out.append(html_escape(p.message)).append("</p>\n");
    table(out, p.details);
    close_page(out);
    return out;
}

} // namespace dingtalk
