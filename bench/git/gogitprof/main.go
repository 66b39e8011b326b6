// Command gogitprof clones a repository with go-git the way the
// initializer's go-git engine does (init, fetch of one branch with NoTags,
// forced checkout) and writes a CPU profile and the peak heap, to find where
// go-git spends its time and memory. With -pack-indexer it indexes the pack
// with the initializer's pack indexer (handlers/git.PackStorage) instead of
// go-git's.
//
//	go run ./bench/git/gogitprof -url git://127.0.0.1:9418/bench.git -dir /mnt/x -depth 1 -cpuprofile cpu.out
package main

import (
	"crypto"
	"crypto/sha1"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/hash"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"

	gitengine "github.com/initializer/initializer/handlers/git"
)

func main() {
	url := flag.String("url", "", "repository URL")
	dir := flag.String("dir", "", "empty target folder")
	branch := flag.String("branch", "main", "branch")
	depth := flag.Int("depth", 0, "depth (0: whole history)")
	cpu := flag.String("cpuprofile", "", "write a CPU profile here")
	cacheMiB := flag.Int("cache", 96, "object cache size, MiB (go-git's default is 96)")
	gogc := flag.Int("gogc", 100, "GOGC during the clone")
	heap := flag.String("heapprofile", "", "write a heap profile here at the peak of the heap in use")
	stdSHA1 := flag.Bool("std-sha1", false, "hash with crypto/sha1 instead of go-git's collision-detecting sha1cd")
	packIndexer := flag.Bool("pack-indexer", false, "index the pack with the initializer's pack indexer instead of go-git's")
	flag.Parse()
	if *stdSHA1 {
		hash.RegisterHash(crypto.SHA1, sha1.New)
	}
	debug.SetGCPercent(*gogc)
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var peak uint64
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak {
				if *heap != "" && m.HeapInuse > peak+8<<20 {
					if f, err := os.Create(*heap); err == nil {
						pprof.Lookup("heap").WriteTo(f, 0)
						f.Close()
					}
				}
				peak = m.HeapInuse
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	if _, err := gogit.PlainInit(*dir, false); err != nil {
		log.Fatal(err)
	}
	wt := osfs.New(*dir)
	dot, _ := wt.Chroot(".git")
	fsStorage := filesystem.NewStorage(dot, cache.NewObjectLRU(cache.FileSize(*cacheMiB)*cache.MiByte))
	var st storage.Storer = fsStorage
	if *packIndexer {
		st = gitengine.NewPackStorage(fsStorage)
	}
	r, err := gogit.Open(st, wt)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{*url}}); err != nil {
		log.Fatal(err)
	}
	spec := config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/remotes/origin/%s", *branch, *branch))
	if err := r.Fetch(&gogit.FetchOptions{RefSpecs: []config.RefSpec{spec}, Depth: *depth, Tags: gogit.NoTags}); err != nil {
		log.Fatal(err)
	}
	t1 := time.Now()
	ref, err := r.Reference(plumbing.NewRemoteReferenceName("origin", *branch), true)
	if err != nil {
		log.Fatal(err)
	}
	w, _ := r.Worktree()
	if err := w.Checkout(&gogit.CheckoutOptions{Hash: ref.Hash(), Force: true}); err != nil {
		log.Fatal(err)
	}
	t2 := time.Now()
	close(done)
	fmt.Printf("fetch %.2f s, checkout %.2f s, peak heap in use %d MiB\n", t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), peak>>20)
}
