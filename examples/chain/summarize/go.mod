module summarize

go 1.22
