#!/usr/bin/env bash
# Commits and pushes what a canary run wrote to the stack files, whatever its exit code, so the next
# `pulumi up` matches what the canary did: a promotion (pinnedCommit + flag on in Pulumi.production.yaml)
# or a rollback latch (flag off in Pulumi.<stack>.yaml, and pinnedCommit reverted after a code rollback).
#
# A production sign-off (exit 0) commits its report.json and signoff.md, since the daily post-rollout review job
# (canary review-due) schedules Day 1, Week 1, Day 30 and Month 1 from it; with the stepped canary it may also have
# pinned the exposure it reached (memory-rollout:context7ExposurePercent) in Pulumi.production.yaml.
#
# usage: canary/ci/commit-result.sh STACK CANARY_EXIT_CODE   (run from the repository root, on a branch)
# Pushes to origin's $GITHUB_REF_NAME (default: the current branch). Exits non-zero only if git fails.
set -euo pipefail

stack=${1:?usage: commit-result.sh STACK CANARY_EXIT_CODE}
outcome=${2:?usage: commit-result.sh STACK CANARY_EXIT_CODE}
branch=${GITHUB_REF_NAME:-$(git rev-parse --abbrev-ref HEAD)}
stack_files=(Pulumi.staging.yaml Pulumi.production.yaml)

git add -- "${stack_files[@]}"
if git diff --cached --quiet -- "${stack_files[@]}"; then
  # A production sign-off changes no stack file, but the post-rollout reviews are scheduled from its report.
  if [ "$stack" = production ] && [ "$outcome" = 0 ] && [ -f reports/production/report.json ]; then
    git add -f reports/production/report.json
    if [ -f reports/production/signoff.md ]; then git add -f reports/production/signoff.md; fi
    git -c user.name="${GIT_AUTHOR_NAME:-rollout-bot}" -c user.email="${GIT_AUTHOR_EMAIL:-rollout-bot@users.noreply.github.com}" \
      commit --quiet -m "Record the production sign-off of $(git rev-parse --short HEAD) (post-rollout reviews start from it)"
    git push --quiet origin "HEAD:${branch}"
    echo "pushed: the production sign-off report"
    exit 0
  fi
  echo "canary ($stack, exit $outcome) changed no stack file: nothing to commit"
  exit 0
fi
# The production guard reads the staging report that justified a promotion; keep it with the commit.
if [ -f "reports/$stack/report.json" ]; then git add -f "reports/$stack/report.json"; fi

short=$(git rev-parse --short HEAD)
if [ "$stack" = production ] && [ "$outcome" = 0 ]; then
  if [ -f reports/production/signoff.md ]; then git add -f reports/production/signoff.md; fi
  git -c user.name="${GIT_AUTHOR_NAME:-rollout-bot}" -c user.email="${GIT_AUTHOR_EMAIL:-rollout-bot@users.noreply.github.com}" \
    commit --quiet -m "Record the production sign-off of $short (post-rollout reviews start from it; exposure pinned to what the canary reached)"
  git push --quiet origin "HEAD:${branch}"
  echo "pushed: the production sign-off report and the exposure it reached"
  exit 0
fi
case "$outcome" in
  0) message="Promote $short to production: $stack canary passed" ;;
  1) message="Roll back Context7 memory in $stack: canary breach (rollback verified)" ;;
  4) message="Roll back Context7 memory in $stack: canary breach (rollback NOT verified, investigate)" ;;
  *) message="Record the $stack canary's stack-file changes (exit $outcome)" ;;
esac
git -c user.name="${GIT_AUTHOR_NAME:-rollout-bot}" -c user.email="${GIT_AUTHOR_EMAIL:-rollout-bot@users.noreply.github.com}" \
  commit --quiet -m "$message"
git push --quiet origin "HEAD:${branch}"
echo "pushed: $message"
