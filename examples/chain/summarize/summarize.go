// Step 3 (Go): summarize the words.
package main

import "context"

type Word struct {
	Word   string `json:"word"`
	Upper  string `json:"upper"`
	Length int    `json:"length"`
}

type Summary struct {
	Count   int    `json:"count"`
	Letters int    `json:"letters"`
	Longest string `json:"longest"`
}

func Handle(ctx context.Context, words []Word) (Summary, error) {
	var s Summary
	for _, w := range words {
		s.Count++
		s.Letters += w.Length
		if w.Length > len(s.Longest) {
			s.Longest = w.Upper
		}
	}
	return s, nil
}
