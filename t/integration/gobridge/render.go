// render: what prometheus-webhook-dingtalk (v2.1.0) would post for an Alertmanager payload with
// these template files, for t/integration/test_go_convert.py to compare with the converted
// template. Its data (models.Data, KV, Pairs) and functions are the bridge's, written again from
// its source (pkg/models/prometheus.go, template/funcs.go, template/template.go) on Go's
// standard library alone: the sprig functions are those the fixtures use, as sprig v3 defines
// them.
//
// usage: render PAYLOAD.json FILE.tmpl... (prints {"title": ..., "text": ...})
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"
)

type Pair struct{ Name, Value string }

type Pairs []Pair

func (ps Pairs) Names() []string {
	ns := []string{}
	for _, p := range ps {
		ns = append(ns, p.Name)
	}
	return ns
}

func (ps Pairs) Values() []string {
	vs := []string{}
	for _, p := range ps {
		vs = append(vs, p.Value)
	}
	return vs
}

type KV map[string]string

// SortedPairs: alertname first, then the others by name (the bridge's order).
func (kv KV) SortedPairs() Pairs {
	keys, start := []string{}, 0
	for k := range kv {
		if k == "alertname" {
			keys = append([]string{k}, keys...)
			start = 1
		} else {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys[start:])
	pairs := Pairs{}
	for _, k := range keys {
		pairs = append(pairs, Pair{k, kv[k]})
	}
	return pairs
}

func (kv KV) Remove(keys []string) KV {
	res := KV{}
	for k, v := range kv {
		keep := true
		for _, r := range keys {
			keep = keep && r != k
		}
		if keep {
			res[k] = v
		}
	}
	return res
}

func (kv KV) Names() []string  { return kv.SortedPairs().Names() }
func (kv KV) Values() []string { return kv.SortedPairs().Values() }

type Alert struct {
	Status       string    `json:"status"`
	Labels       KV        `json:"labels"`
	Annotations  KV        `json:"annotations"`
	StartsAt     time.Time `json:"startsAt"`
	EndsAt       time.Time `json:"endsAt"`
	GeneratorURL string    `json:"generatorURL"`
	Fingerprint  string    `json:"fingerprint"`
}

type Alerts []Alert

func (as Alerts) of(status string) []Alert {
	res := []Alert{}
	for _, a := range as {
		if a.Status == status {
			res = append(res, a)
		}
	}
	return res
}

func (as Alerts) Firing() []Alert   { return as.of("firing") }
func (as Alerts) Resolved() []Alert { return as.of("resolved") }

type Data struct {
	Receiver          string `json:"receiver"`
	Status            string `json:"status"`
	Alerts            Alerts `json:"alerts"`
	GroupLabels       KV     `json:"groupLabels"`
	CommonLabels      KV     `json:"commonLabels"`
	CommonAnnotations KV     `json:"commonAnnotations"`
	ExternalURL       string `json:"externalURL"`
	AtMobiles         []string
}

// the bridge's markdown: \ before _ * and `
func markdown(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c == '_' || c == '*' || c == '`' {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func strslice(v interface{}) []string {
	switch l := v.(type) {
	case []string:
		return l
	case Pairs:
		return l.Values()
	}
	return []string{fmt.Sprint(v)}
}

func toTime(v interface{}) time.Time {
	if t, ok := v.(time.Time); ok {
		return t
	}
	return time.Now()
}

var funcs = template.FuncMap{
	// the bridge's own (template/funcs.go)
	"toUpper":  strings.ToUpper,
	"toLower":  strings.ToLower,
	"markdown": markdown,
	// sprig v3's, those the fixtures and the converter's table use
	"upper":   strings.ToUpper,
	"lower":   strings.ToLower,
	"title":   strings.Title,
	"join":    func(sep string, v interface{}) string { return strings.Join(strslice(v), sep) },
	"replace": func(old, new, src string) string { return strings.Replace(src, old, new, -1) },
	"trunc": func(c int, s string) string {
		if c >= 0 && len(s) > c {
			return s[:c]
		}
		return s
	},
	"default": func(d interface{}, given ...interface{}) interface{} {
		if len(given) == 0 || given[0] == nil || given[0] == "" {
			return d
		}
		return given[0]
	},
	"regexReplaceAll": func(re, s, repl string) string {
		return regexp.MustCompile(re).ReplaceAllString(s, repl)
	},
	"now":  time.Now,
	"date": func(layout string, t interface{}) string { return toTime(t).Local().Format(layout) },
	"dateInZone": func(layout string, t interface{}, zone string) string {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			loc = time.UTC
		}
		return toTime(t).In(loc).Format(layout)
	},
}

func execute(tmpl *template.Template, text string, data interface{}) (string, error) {
	t, err := tmpl.Clone()
	if err != nil {
		return "", err
	}
	t, err = t.New("").Option("missingkey=zero").Parse(text)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	err = t.Execute(&buf, data)
	return buf.String(), err
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: render PAYLOAD.json FILE.tmpl...")
		os.Exit(2)
	}
	payload, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var data Data
	if err := json.Unmarshal(payload, &data); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpl := template.New("").Option("missingkey=zero").Funcs(funcs)
	for _, f := range os.Args[2:] {
		if tmpl, err = tmpl.ParseFiles(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	out := map[string]string{}
	for key, text := range map[string]string{
		"title": `{{ template "ding.link.title" . }}`,
		"text":  `{{ template "ding.link.content" . }}`,
	} {
		if out[key], err = execute(tmpl, text, data); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
