module ferry.dev/shared

go 1.26.8
