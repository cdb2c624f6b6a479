#!/usr/bin/env bash
# Commits and pushes a post-rollout review's report (reports/production/reviews/REVIEW/), whatever its verdict, so
# the next daily run sees it recorded (canary review-due) and the team reads it in the repository.
#
# usage: canary/ci/commit-review.sh REVIEW EVALUATE_EXIT_CODE   (run from the repository root, on a branch)
# Pushes to origin's $GITHUB_REF_NAME (default: the current branch). Exits non-zero only if git fails.
set -euo pipefail

review=${1:?usage: commit-review.sh REVIEW EVALUATE_EXIT_CODE}
outcome=${2:?usage: commit-review.sh REVIEW EVALUATE_EXIT_CODE}
branch=${GITHUB_REF_NAME:-$(git rev-parse --abbrev-ref HEAD)}
dir="reports/production/reviews/$review"

if [ ! -f "$dir/report.json" ]; then
  # Exit 3 (history unreadable) writes nothing: the review stays due and the next daily run retries it.
  echo "review $review (exit $outcome) wrote no report: nothing to commit"
  exit 0
fi
git add -f -- "$dir"
case "$outcome" in
  0) verdict=pass ;;
  1) verdict=fail ;;
  2) verdict=inconclusive ;;
  *) verdict="exit $outcome" ;;
esac
git -c user.name="${GIT_AUTHOR_NAME:-rollout-bot}" -c user.email="${GIT_AUTHOR_EMAIL:-rollout-bot@users.noreply.github.com}" \
  commit --quiet -m "Record the $review post-rollout review of production: $verdict"
git push --quiet origin "HEAD:${branch}"
echo "pushed: $review review ($verdict)"
