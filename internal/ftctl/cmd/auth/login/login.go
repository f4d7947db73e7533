// Package login is `ftctl auth login`.
package login

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth/shared"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
	"github.com/ftgate/ftgate/internal/version"
)

// audienceScopePrefix is Dex's scope that puts another client's id into aud.
const audienceScopePrefix = "audience:server:client_id:"

// LoginOptions are the options of `ftctl auth login`.
type LoginOptions struct {
	IO          *cmdutil.IOStreams
	Server      string
	Web         bool
	Port        int
	Timeout     time.Duration
	HTTPClient  *http.Client
	Cache       *tokencache.TokenCache
	OpenBrowser func(string) error
	// ClientVersion is this ftctl's version, checked against the gateway's minimum.
	ClientVersion string
	// RememberServer saves Server as the default when the config file has none.
	RememberServer func(server string) error
}

// NewCmdLogin returns `ftctl auth login`.
func NewCmdLogin(f *cmdutil.Factory, runF func(context.Context, *LoginOptions) error) *cobra.Command {
	opts := &LoginOptions{}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to the gateway (device code, or --web for a browser on this machine)",
		Long: `Log in to the gateway. ftctl asks the gateway which identity provider,
client and scopes to use (GET /api/auth/config), so only the gateway URL is needed.

By default it uses the device authorization grant: it prints a URL and a code to
enter in any browser, which works over SSH. With --web it opens a browser on this
machine and receives the answer on a loopback redirect (authorization code + PKCE).`,
		Example: `  ftctl auth login --server https://ftgate.example.edu
  ftctl auth login --web`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, err := f.Server()
			if err != nil {
				return err
			}
			cache, err := f.TokenCache()
			if err != nil {
				return err
			}
			if opts.Port < 0 || opts.Port > 65535 {
				return cmdutil.UsageErrorf("--port must be 0..65535, got %d", opts.Port)
			}
			opts.IO, opts.Server, opts.Cache = f.IO, server, cache
			opts.HTTPClient = f.PlainHTTPClient()
			opts.OpenBrowser = f.OpenBrowser
			opts.ClientVersion = f.AppVersion
			if opts.OpenBrowser == nil && opts.Web {
				opts.OpenBrowser = openBrowser
			}
			opts.RememberServer = func(s string) error {
				c, err := f.Config()
				if err != nil || c.Server != "" {
					return err
				}
				c.Server = s
				return f.SaveConfig(c)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runLogin(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Web, "web", "w", false, "log in with a browser on this machine (authorization code + PKCE)")
	cmd.Flags().IntVar(&opts.Port, "port", 8085, "loopback port of the --web redirect (must match the client's registered redirect URI; 0 picks one)")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 10*time.Minute, "how long to wait for the login to be approved")
	return cmd
}

func runLogin(ctx context.Context, opts *LoginOptions) error {
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	ac, err := shared.FetchAuthConfig(ctx, opts.HTTPClient, opts.Server)
	if err != nil {
		return err
	}
	if older, ok := version.Older(opts.ClientVersion, ac.MinClientVersion); ok && older {
		fmt.Fprintf(opts.IO.ErrOut, "warning: this ftctl (%s) is older than %s, the oldest the gateway at %s supports; some commands may fail: install a newer ftctl\n",
			opts.ClientVersion, ac.MinClientVersion, opts.Server)
	}
	octx := oidc.ClientContext(ctx, opts.HTTPClient)
	provider, err := oidc.NewProvider(octx, ac.Issuer)
	if err != nil {
		return fmt.Errorf("discover identity provider %s: %w", ac.Issuer, err)
	}
	conf := &oauth2.Config{ClientID: ac.ClientID, Endpoint: provider.Endpoint(), Scopes: loginScopes(ac)}
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	var tok *oauth2.Token
	if opts.Web {
		tok, err = webLogin(octx, opts, conf)
	} else {
		tok, err = deviceLogin(octx, opts, conf)
	}
	if err != nil {
		return err
	}
	s := &tokencache.Session{Server: opts.Server, Issuer: ac.Issuer, ClientID: ac.ClientID, Scopes: conf.Scopes, Audience: ac.Audience, TokenURL: conf.Endpoint.TokenURL}
	s.SetToken(tok)
	if err := opts.Cache.Save(s); err != nil {
		return err
	}
	if opts.RememberServer != nil {
		if err := opts.RememberServer(opts.Server); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "warning: could not save %s as the default gateway: %v\n", opts.Server, err)
		}
	}
	bearer, _ := s.Bearer()
	who, err := shared.FetchWhoami(ctx, opts.HTTPClient, opts.Server, bearer)
	if err != nil {
		return fmt.Errorf("logged in at %s, but the gateway refuses the token: %w", ac.Issuer, err)
	}
	fmt.Fprintf(opts.IO.Out, "Logged in to %s as %s%s.\n", opts.Server, who.Username, roleSuffix(who.Admin))
	return nil
}

// loginScopes are the gateway's scopes plus, when the API's audience is not the
// client itself, Dex's audience scope so that aud names the API.
func loginScopes(ac *client.AuthConfig) []string {
	scopes := slices.Clone(ac.Scopes)
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", "email", "groups", oidc.ScopeOfflineAccess}
	}
	if ac.Audience != "" && ac.Audience != ac.ClientID && !slices.Contains(scopes, audienceScopePrefix+ac.Audience) {
		scopes = append(scopes, audienceScopePrefix+ac.Audience)
	}
	return scopes
}

func deviceLogin(ctx context.Context, opts *LoginOptions, conf *oauth2.Config) (*oauth2.Token, error) {
	if conf.Endpoint.DeviceAuthURL == "" {
		return nil, errors.New("the identity provider offers no device authorization endpoint: use `ftctl auth login --web`")
	}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("start device login: %w", err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "Open %s in a browser and enter the code: %s\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(opts.IO.ErrOut, "(or open %s)\n", da.VerificationURIComplete)
	}
	fmt.Fprintln(opts.IO.ErrOut, "Waiting for approval...")
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return nil, errors.New("login not approved in time")
		}
		return nil, fmt.Errorf("device login: %w", err)
	}
	return tok, nil
}

func webLogin(ctx context.Context, opts *LoginOptions, conf *oauth2.Config) (*oauth2.Token, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)))
	if err != nil {
		return nil, fmt.Errorf("listen for the login redirect on 127.0.0.1:%d: %w (try --port 0 if the client allows any port)", opts.Port, err)
	}
	defer ln.Close()
	conf.RedirectURL = "http://" + ln.Addr().String() + "/callback"
	state, err := randomString()
	if err != nil {
		return nil, err
	}
	verifier := oauth2.GenerateVerifier()
	type result struct {
		code string
		err  error
	}
	done := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		var res result
		switch {
		case q.Get("state") != state:
			http.Error(w, "state mismatch: start the login again", http.StatusBadRequest)
			return
		case q.Get("error") != "":
			res.err = fmt.Errorf("login refused by the identity provider: %s %s", q.Get("error"), q.Get("error_description"))
			fmt.Fprintf(w, "<p>Login failed: %s</p>", html.EscapeString(res.err.Error()))
		case q.Get("code") == "":
			http.Error(w, "no code in the redirect", http.StatusBadRequest)
			return
		default:
			res.code = q.Get("code")
			fmt.Fprint(w, "<p>ftctl is logged in. You can close this tab.</p>")
		}
		select {
		case done <- res:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
	fmt.Fprintf(opts.IO.ErrOut, "Open this URL in a browser to log in:\n  %s\nWaiting for the browser...\n", authURL)
	if opts.OpenBrowser != nil {
		if err := opts.OpenBrowser(authURL); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "(could not open a browser: %v)\n", err)
		}
	}
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		return nil, errors.New("login not completed in time")
	}
	if res.err != nil {
		return nil, res.err
	}
	tok, err := conf.Exchange(ctx, res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("exchange the login code: %w", err)
	}
	return tok, nil
}

func randomString() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random state: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// openBrowser opens url with the desktop's opener; the URL is one argv element.
func openBrowser(url string) error {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	return exec.Command(name, url).Start()
}

func roleSuffix(admin bool) string {
	if admin {
		return " (admin)"
	}
	return ""
}
