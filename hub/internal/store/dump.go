package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
)

// DumpSQLite returns every row of every table of the SQLite store in dir as
// text, one row a line ("table:value|value|…"), for inspection: row C6 of
// shared/reference/reliability.md greps it for secrets. It opens the
// database read-only and may run beside an open store.
func DumpSQLite(ctx context.Context, dir string) (dump []byte, rows int, err error) {
	path, err := filepath.Abs(filepath.Join(dir, "hub.db"))
	if err != nil {
		return nil, 0, fmt.Errorf("dump sqlite: %w", err)
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: url.Values{"mode": {"ro"}}.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, 0, fmt.Errorf("dump sqlite: %w", err)
	}
	defer db.Close()
	var tables []string
	rs, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		return nil, 0, sqliteErr("dump sqlite: list tables", err)
	}
	for rs.Next() {
		var n string
		if err := rs.Scan(&n); err != nil {
			rs.Close()
			return nil, 0, sqliteErr("dump sqlite: list tables", err)
		}
		tables = append(tables, n)
	}
	rs.Close()
	var b bytes.Buffer
	for _, t := range tables {
		n, err := dumpTable(ctx, db, t, &b)
		if err != nil {
			return nil, 0, err
		}
		rows += n
	}
	return b.Bytes(), rows, nil
}

// dumpTable writes the rows of table to b.
func dumpTable(ctx context.Context, db *sql.DB, table string, b *bytes.Buffer) (int, error) {
	rs, err := db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
	if err != nil {
		return 0, sqliteErr("dump sqlite: "+table, err)
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return 0, sqliteErr("dump sqlite: "+table, err)
	}
	n := 0
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rs.Next() {
		if err := rs.Scan(ptrs...); err != nil {
			return n, sqliteErr("dump sqlite: "+table, err)
		}
		n++
		fmt.Fprintf(b, "%s:", table)
		for _, v := range vals {
			if bs, ok := v.([]byte); ok {
				b.Write(bs)
			} else {
				fmt.Fprint(b, v)
			}
			b.WriteByte('|')
		}
		b.WriteByte('\n')
	}
	return n, sqliteErr("dump sqlite: "+table, rs.Err())
}
