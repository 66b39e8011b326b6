// Command htpasswd prints a bcrypt htpasswd line ("user:hash") for the
// distribution registry. The password is read from the environment variable
// named by -password-env, or from standard input when that is unset.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	passwordEnv := flag.String("password-env", "HTPASSWD_PASSWORD", "environment variable holding the password")
	cost := flag.Int("cost", bcrypt.DefaultCost, "bcrypt cost")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("htpasswd: ")
	if flag.NArg() != 1 || flag.Arg(0) == "" || strings.Contains(flag.Arg(0), ":") {
		log.Fatal("usage: htpasswd [-password-env VAR] USER")
	}
	password, ok := os.LookupEnv(*passwordEnv)
	if !ok {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			log.Fatalf("reading the password from stdin: %v", err)
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if password == "" {
		log.Fatal("empty password")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), *cost)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s:%s\n", flag.Arg(0), hash)
}
