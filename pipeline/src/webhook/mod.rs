//! Webhook push events of GitHub, GitLab and Gitea/Forgejo: detect, verify, parse.
