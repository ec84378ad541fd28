/* harness.h: a tiny test harness (in the spirit of redis testhelp.h). Each test binary
 * defines test functions, runs them with RUN(fn), and ends with `return harness_summary();`
 * which prints "N passed, N failed, N skipped" (counted per test function) and returns the
 * exit code. Checks report file:line and keep going; a failed check fails the enclosing test.
 * A test that cannot check what it is about here (no such CPU feature, no such file system)
 * calls harness_skip(): it counts as skipped, not passed. A program that ends with nothing
 * passed, failed or skipped fails (it tested nothing). */
#ifndef SA_TESTS_HARNESS_H
#define SA_TESTS_HARNESS_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

extern int harness_check_failed; /* checks failed in the current test */

void harness_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void harness_run(const char *name, void (*fn)(void));
/* Marks the current test skipped, with the reason printed on its line; a failed check in
 * the same test still fails it. Return from the test after calling it. */
void harness_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int harness_summary(void);
/* Directory of the shared data (../shared/data from the repo root, or $SA_SHARED_DATA). */
const char *harness_shared_data(void);
/* What to do when it is missing (the same words as tests/py/harness.py and tests/run.sh). */
#define HARNESS_SHARED_HINT                                                                    \
    "Set SA_SHARED_DATA to the folder that holds gsm8k/ and hh-rlhf/ (by default ../shared/data " \
    "beside the checkout)."
/* Opens rel (e.g. "gsm8k/test.jsonl") in the shared data for reading; NULL and a failed check
 * that says how to point the tests at the data when it is not there. */
FILE *harness_open_shared(const char *file, int line, const char *rel);
#define OPEN_SHARED(rel) harness_open_shared(__FILE__, __LINE__, rel)
/* Pages of the file at path now in the page cache (mincore on a mapping of it); -1 on error. */
long harness_resident_pages(const char *path);
/* Whether path is on tmpfs (where the page cache is the file and cannot be dropped). */
bool harness_on_tmpfs(const char *path);
/* A fresh temporary directory for this test binary (under tests/tmp/ or $TMPDIR). */
const char *harness_tmpdir(void);

#define RUN(fn) harness_run(#fn, fn)

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) harness_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);               \
    } while (0)
#define CHECK_MSG(cond, ...)                                                             \
    do {                                                                                 \
        if (!(cond)) harness_fail(__FILE__, __LINE__, __VA_ARGS__);                      \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                               \
    do {                                                                                 \
        long long _a = (long long)(a), _b = (long long)(b);                              \
        if (_a != _b) harness_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, _a, _b); \
    } while (0)
#define CHECK_EQ_STR(a, b)                                                               \
    do {                                                                                 \
        const char *_a = (a), *_b = (b);                                                 \
        if (!_a || !_b || strcmp(_a, _b))                                                \
            harness_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,      \
                         _a ? _a : "(null)", _b ? _b : "(null)");                        \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                            \
    do {                                                                                 \
        double _a = (double)(a), _b = (double)(b);                                       \
        if (!(fabs(_a - _b) <= (tol)))                                                   \
            harness_fail(__FILE__, __LINE__, "%s ~ %s: %g vs %g (tol %g)", #a, #b, _a, _b, (double)(tol)); \
    } while (0)
/* For enum sa_status results: prints sa_last_error() on failure. */
#define CHECK_OK(expr)                                                                   \
    do {                                                                                 \
        int _s = (int)(expr);                                                            \
        if (_s != 0) harness_fail(__FILE__, __LINE__, "%s: status %d: %s", #expr, _s, sa_last_error()); \
    } while (0)

#endif
