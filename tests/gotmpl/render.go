// Command render renders Ollama chat templates exactly as Ollama does, with Go's own
// text/template engine, for the parity tests. It mirrors Ollama's template package
// (template/template.go): the template is parsed with missingkey=zero and the `json`
// function; for chat, consecutive messages of one role (except tool) are merged with
// "\n\n" before rendering, .System joins every system message with "\n\n", system
// messages stay in .Messages, and .Response is empty.
//
// Input on stdin:  {"template": "...", "conversations": [[{"role": "...", "content": "..."}]]}
// Output on stdout: a JSON array with one rendered prompt per conversation.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
	"text/template/parse"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type request struct {
	Template      string      `json:"template"`
	Conversations [][]Message `json:"conversations"`
}

var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
}

// collate merges runs of one role and gathers the system messages, as Ollama does.
func collate(msgs []Message) (string, []*Message) {
	var system []string
	var collated []*Message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		last := len(collated) - 1
		if last >= 0 && collated[last].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[last].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

// mentionsMessages tells whether Ollama would render the template in chat mode: it
// does so only when the template names .Messages somewhere.
func mentionsMessages(n parse.Node) bool {
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if mentionsMessages(c) {
				return true
			}
		}
	case *parse.ActionNode:
		return mentionsMessages(n.Pipe)
	case *parse.IfNode:
		return mentionsMessages(&n.BranchNode)
	case *parse.RangeNode:
		return mentionsMessages(&n.BranchNode)
	case *parse.WithNode:
		return mentionsMessages(&n.BranchNode)
	case *parse.BranchNode:
		if mentionsMessages(n.Pipe) || mentionsMessages(n.List) {
			return true
		}
		return n.ElseList != nil && mentionsMessages(n.ElseList)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			for _, a := range c.Args {
				if mentionsMessages(a) {
					return true
				}
			}
		}
	case *parse.FieldNode:
		for _, id := range n.Ident {
			if strings.EqualFold(id, "messages") {
				return true
			}
		}
	}
	return false
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "render: bad input:", err)
		os.Exit(2)
	}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(req.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render: template does not parse:", err)
		os.Exit(1)
	}
	if !mentionsMessages(tmpl.Tree.Root) {
		fmt.Fprintln(os.Stderr, "render: template never names .Messages: Ollama would render it in legacy prompt mode")
		os.Exit(1)
	}
	out := make([]string, 0, len(req.Conversations))
	for i, conv := range req.Conversations {
		system, messages := collate(conv)
		var b strings.Builder
		err := tmpl.Execute(&b, map[string]any{
			"System":     system,
			"Messages":   messages,
			"Tools":      nil,
			"Response":   "",
			"Think":      false,
			"IsThinkSet": false,
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "render: conversation %d: %v\n", i, err)
			os.Exit(1)
		}
		out = append(out, b.String())
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}
