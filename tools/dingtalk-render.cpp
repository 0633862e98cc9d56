// dingtalk-render: the module's renderer on the command line. Reads an Alertmanager webhook
// payload and prints the DingTalk request the module would send for it, byte for byte (same
// core, same templates, same size limit); --send posts it. The answer to the Go bridge's
// template playground, without a browser.

#include "alert.hpp"
#include "delivery.hpp"
#include "render.hpp"
#include "sender.hpp"
#include "sign.hpp"
#include "template.hpp"
#include "zone.hpp"

#include <jansson.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace
{

const char *const kUsage = R"(usage: dingtalk-render [options] [PAYLOAD.json]

Prints the DingTalk request ngx_http_dingtalk_module would send for an Alertmanager webhook
payload (read from PAYLOAD.json, or stdin).

  --zone ZONE             time zone for the times shown (default Asia/Shanghai)
  --template FILE         mustache template for the text (as dingtalk_template)
  --title-template TEXT   mustache template for the title (as dingtalk_title_template)
  --at-mobiles A,B        mention these mobiles (as dingtalk_at_mobiles)
  --at-user-ids A,B       mention these user ids (as dingtalk_at_user_ids)
  --at-all                mention everyone (as dingtalk_at_all on)
  --max-alerts N          alerts kept, the rest only counted (as dingtalk_max_alerts; 100)
  --max-body-size BYTES   refuse a larger payload (as dingtalk_max_body_size; 1048576)
  --text                  print only the markdown text, as DingTalk shows it
  --pretty                indent the JSON
  --send URL              POST it to URL, the robot's webhook URL
                          (https://oapi.dingtalk.com/robot/send?access_token=...)
  --secret SECRET         sign the request (with --send)
  --ca FILE               trust these CAs instead of the system's (with --send)
  --insecure              do not verify the certificate (with --send)
  -h, --help              this text

Exit status: 0 done (with --send: DingTalk answered errcode 0), 1 the payload is not an
Alertmanager notification or the template is bad, 2 usage, 3 the send failed.
)";

std::string read_all(std::istream &in)
{
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool read_file(const std::string &path, std::string &out)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return false;
    }
    out = read_all(in);
    return true;
}

std::vector<std::string> split(const std::string &list)
{
    std::vector<std::string> out;
    std::stringstream ss(list);
    for (std::string item; std::getline(ss, item, ',');) {
        if (!item.empty()) {
            out.push_back(item);
        }
    }
    return out;
}

int usage_error(const std::string &what)
{
    std::cerr << "dingtalk-render: " << what << "\n\n" << kUsage;
    return 2;
}

std::string pretty(const std::string &json)
{
    json_error_t err;
    json_t *j = json_loads(json.c_str(), 0, &err);
    if (j == nullptr) {
        return json;
    }
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    std::string out = s ? s : json;
    std::free(s);
    json_decref(j);
    return out;
}

} // namespace

int main(int argc, char **argv)
{
    std::string zone_name = "Asia/Shanghai", template_path, title_template, payload_path;
    std::string send_url, secret, ca_path;
    bool text_only = false, indent = false, insecure = false;
    dingtalk::MentionRule rule;
    dingtalk::ParseLimits limits;

    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&](std::string &out) {
            if (i + 1 >= argc) {
                return false;
            }
            out = argv[++i];
            return true;
        };
        std::string v;
        if (arg == "-h" || arg == "--help") {
            std::cout << kUsage;
            return 0;
        } else if (arg == "--zone") {
            if (!value(zone_name))
                return usage_error("--zone needs a value");
        } else if (arg == "--template") {
            if (!value(template_path))
                return usage_error("--template needs a file");
        } else if (arg == "--title-template") {
            if (!value(title_template))
                return usage_error("--title-template needs a value");
        } else if (arg == "--at-mobiles") {
            if (!value(v))
                return usage_error("--at-mobiles needs a value");
            for (auto &m : split(v))
                rule.mobiles.push_back(m);
        } else if (arg == "--at-user-ids") {
            if (!value(v))
                return usage_error("--at-user-ids needs a value");
            for (auto &u : split(v))
                rule.user_ids.push_back(u);
        } else if (arg == "--at-all") {
            rule.all = true;
        } else if (arg == "--max-alerts" || arg == "--max-body-size") {
            char *end = nullptr;
            const unsigned long n = value(v) ? std::strtoul(v.c_str(), &end, 10) : 0;
            if (n == 0 || end == nullptr || *end != '\0' || (arg == "--max-alerts" && n > 10000))
                return usage_error(arg + " needs a number (--max-alerts: 1 to 10000)");
            (arg == "--max-alerts" ? limits.max_alerts : limits.max_body_bytes) = n;
        } else if (arg == "--text") {
            text_only = true;
        } else if (arg == "--pretty") {
            indent = true;
        } else if (arg == "--send") {
            if (!value(send_url))
                return usage_error("--send needs the robot's webhook URL");
        } else if (arg == "--secret") {
            if (!value(secret))
                return usage_error("--secret needs a value");
        } else if (arg == "--ca") {
            if (!value(ca_path))
                return usage_error("--ca needs a file");
        } else if (arg == "--insecure") {
            insecure = true;
        } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
            return usage_error("unknown option " + arg);
        } else if (payload_path.empty()) {
            payload_path = arg;
        } else {
            return usage_error("one payload at a time");
        }
    }

    std::string body;
    if (payload_path.empty() || payload_path == "-") {
        body = read_all(std::cin);
    } else if (!read_file(payload_path, body)) {
        std::cerr << "dingtalk-render: cannot read " << payload_path << ": " << std::strerror(errno)
                  << "\n";
        return 1;
    }

    std::string error;
    const auto zone = dingtalk::Zone::find(zone_name, error);
    if (!zone) {
        std::cerr << "dingtalk-render: " << error << "\n";
        return 2;
    }

    dingtalk::RenderOptions opt;
    opt.zone = &*zone;
    if (!template_path.empty()) {
        std::string source;
        if (!read_file(template_path, source)) {
            std::cerr << "dingtalk-render: cannot read " << template_path << "\n";
            return 1;
        }
        opt.text_template =
            dingtalk::Template::parse(std::move(source), dingtalk::Template::Kind::text, error);
        if (!opt.text_template) {
            std::cerr << "dingtalk-render: " << template_path << " " << error << "\n";
            return 1;
        }
    }
    if (!title_template.empty()) {
        opt.title_template =
            dingtalk::Template::parse(title_template, dingtalk::Template::Kind::title, error);
        if (!opt.title_template) {
            std::cerr << "dingtalk-render: --title-template " << error << "\n";
            return 1;
        }
    }

    const dingtalk::ParseResult parsed = dingtalk::parse_notification(body, limits);
    if (!parsed.notification) {
        std::cerr << "dingtalk-render: not an Alertmanager notification: " << parsed.error << "\n";
        return 1;
    }
    opt.at = dingtalk::resolve_mentions({rule}, *parsed.notification);

    dingtalk::Message m;
    try {
        m = dingtalk::render_message(*parsed.notification, opt);
    } catch (const std::exception &e) {
        std::cerr << "dingtalk-render: " << e.what() << "\n";
        return 1;
    }
    std::cout << (text_only ? m.text : indent ? pretty(m.request_body) : m.request_body) << "\n";
    if (m.omitted > 0) {
        std::cerr << "dingtalk-render: " << m.shown << " of " << m.shown + m.omitted
                  << " alerts fit DingTalk's limit (" << m.request_body.size() << " bytes)\n";
    }
    if (send_url.empty()) {
        return 0;
    }

    if (!secret.empty() && !dingtalk::valid_secret(secret)) {
        std::cerr << "dingtalk-render: --secret is not \"SEC\" followed by hex digits\n";
        return 2;
    }
    dingtalk::global_init();
    dingtalk::HttpRequest req;
    req.url = send_url + dingtalk::signed_query(secret);
    req.body = m.request_body;
    req.ssl_verify = !insecure;
    if (!ca_path.empty()) {
        std::string pem;
        if (!read_file(ca_path, pem)) {
            std::cerr << "dingtalk-render: cannot read " << ca_path << "\n";
            return 2;
        }
        req.ca_pem = std::make_shared<const std::string>(std::move(pem));
    }
    const dingtalk::HttpReply reply = dingtalk::http_post(req);
    dingtalk::Report rep = dingtalk::interpret(reply);

    // The URL holds the token: keep it (and the secret) out of anything printed.
    dingtalk::Target t;
    const auto at = send_url.find("access_token=");
    if (at != std::string::npos) {
        t.token = send_url.substr(at + 13, send_url.find('&', at) - (at + 13));
    }
    t.secret = secret;
    std::cerr << "dingtalk-render: " << dingtalk::redact(rep.reason, t);
    if (rep.errcode) {
        std::cerr << " (errcode " << *rep.errcode << ", errmsg \""
                  << dingtalk::redact(rep.errmsg, t) << "\")";
    }
    std::cerr << "\n";
    dingtalk::global_cleanup();
    return rep.outcome == dingtalk::Outcome::delivered ? 0 : 3;
}
