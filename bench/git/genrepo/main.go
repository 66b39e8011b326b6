// Command genrepo writes a git fast-import stream for the git benchmark's
// repository: a deterministic history of about 5,000 commits over 10,000
// text files, a few MiB-sized binary blobs and a few hundred tags.
//
//	go run ./bench/git/genrepo | git -C repo.git fast-import --quiet
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strings"
)

func main() {
	files := flag.Int("files", 10000, "text files in the tree")
	commits := flag.Int("commits", 5000, "commits after the first")
	blobs := flag.Int("blobs", 6, "binary blobs of -blob-mib MiB")
	blobMiB := flag.Int("blob-mib", 4, "size of each binary blob")
	tags := flag.Int("tags", 300, "tags (every other one annotated)")
	flag.Parse()

	rng := rand.New(rand.NewSource(1))
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()

	words := strings.Fields("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega data model train loss batch epoch layer weight bias tensor shape value index")
	line := func() string {
		n := 4 + rng.Intn(10)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = words[rng.Intn(len(words))]
		}
		return strings.Join(parts, " ") + "\n"
	}
	content := make([][]string, *files)
	path := func(i int) string { return fmt.Sprintf("src/d%03d/f%05d.txt", i/100, i) }
	for i := range content {
		n := 30 + rng.Intn(60)
		content[i] = make([]string, n)
		for j := range content[i] {
			content[i][j] = line()
		}
	}
	data := func(s string) { fmt.Fprintf(w, "data %d\n%s\n", len(s), s) }
	modify := func(p string, body string) {
		fmt.Fprintf(w, "M 100644 inline %s\n", p)
		data(body)
	}
	ts := int64(1600000000)
	commit := func(n int, msg string, body func()) {
		ts += 600 + int64(rng.Intn(3600))
		fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\n", n)
		fmt.Fprintf(w, "author Bench <bench@initializer.invalid> %d +0000\ncommitter Bench <bench@initializer.invalid> %d +0000\n", ts, ts)
		data(msg)
		if n > 1 {
			fmt.Fprintf(w, "from :%d\n", n-1)
		}
		body()
	}

	commit(1, "initial tree", func() {
		for i := range content {
			modify(path(i), strings.Join(content[i], ""))
		}
	})
	blobEvery := *commits / (*blobs + 1)
	tagEvery := *commits / (*tags + 1)
	tagged := 0
	for c := 2; c <= *commits+1; c++ {
		commit(c, fmt.Sprintf("change %d", c), func() {
			for k := 1 + rng.Intn(4); k > 0; k-- {
				i := rng.Intn(len(content))
				for e := 1 + rng.Intn(3); e > 0; e-- {
					content[i][rng.Intn(len(content[i]))] = line()
				}
				if rng.Intn(4) == 0 {
					content[i] = append(content[i], line())
				}
				modify(path(i), strings.Join(content[i], ""))
			}
			if blobEvery > 0 && c%blobEvery == 0 && c/blobEvery <= *blobs {
				b := make([]byte, *blobMiB<<20)
				rng.Read(b)
				modify(fmt.Sprintf("assets/blob%d.bin", c/blobEvery), string(b))
			}
		})
		if tagEvery > 0 && c%tagEvery == 0 && tagged < *tags {
			tagged++
			if tagged%2 == 0 {
				fmt.Fprintf(w, "tag v%d.0\nfrom :%d\ntagger Bench <bench@initializer.invalid> %d +0000\n", tagged, c, ts)
				data(fmt.Sprintf("release %d", tagged))
			} else {
				fmt.Fprintf(w, "reset refs/tags/build-%d\nfrom :%d\n\n", tagged, c)
			}
		}
	}
}
