/*
 * test_fuzz_regress.c - replays the fuzzers' kept inputs through the same harness entry
 * points the fuzz build wraps (tests/fuzz/fuzz_<name>.c), in the normal build. Every file
 *
 *   in tests/fuzz/regress/<name>/       inputs that once crashed a fuzzer or broke one of
 *                                       its properties: each must now run clean
 *   in tests/fuzz/corpus/<name>/        the seeds: each must run clean too
 *   in tests/fuzz/regress/<name>/open/  known failures in code owned elsewhere, not fixed
 *                                       yet: replayed (with the properties that catch
 *                                       them) only when TOEGW_FUZZ_OPEN=1, else reported
 *                                       as skipped
 *
 * Each input runs in a child process of its own, in a private network namespace when one
 * can be made (an input may make the initiator look a redirect's host name up), so a
 * crash names the file. Run from the repository root (scripts/run-tests does), or set
 * TOEGW_FUZZ_DIR to the tests/fuzz directory.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"

/* Only in a build with the emulated TOE (its frame parser). */
int fuzz_frame(const uint8_t *data, size_t size) __attribute__((weak));

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

static const char *fuzz_dir(void)
{
    const char *d = getenv("TOEGW_FUZZ_DIR");

    return d && *d ? d : "tests/fuzz";
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        /* exactly the file's size: a harness reading past its input is caught */
        buf = malloc(n ? (size_t)n : 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

/* Run one input in a child; 0 when it ran clean, else a description in why. */
static int replay(fuzz_fn fn, const char *path, bool open_checks, char *why, size_t len)
{
    pid_t pid;
    int st;

    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        snprintf(why, len, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        size_t n = 0;
        uint8_t *data = read_file(path, &n);
        if (!data)
            _exit(3);
        if (unshare(CLONE_NEWNET) < 0) {
            /* not root: the kept inputs name no host that needs a lookup */
        }
        if (open_checks)
            setenv("TOEGW_FUZZ_OPEN", "1", 1);
        fn(data, n);
        free(data);
        _exit(0);
    }
    if (waitpid(pid, &st, 0) < 0) {
        snprintf(why, len, "waitpid: %s", strerror(errno));
        return -1;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
        snprintf(why, len, "cannot read it");
    else if (WIFEXITED(st))
        snprintf(why, len, "exit status %d (a sanitizer report is above)", WEXITSTATUS(st));
    else
        snprintf(why, len, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    return -1;
}

/* Replay every regular file of dir (missing dir: nothing). Returns how many ran. */
static int replay_dir(fuzz_fn fn, const char *name, const char *dir, bool open_checks)
{
    char path[4096], why[160];
    struct dirent *e;
    struct stat sb;
    int count = 0;
    DIR *d = opendir(dir);

    if (!d) {
        cr_expect_eq(errno, ENOENT, "%s: cannot open %s: %s", name, dir, strerror(errno));
        return 0;
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "README"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
            continue;
        count++;
        cr_expect_eq(replay(fn, path, open_checks, why, sizeof(why)), 0, "fuzz_%s on %s: %s",
                     name, path, why);
    }
    closedir(d);
    return count;
}

static void replay_kept(fuzz_fn fn, const char *name)
{
    char dir[1024];
    struct stat sb;
    int n = 0;

    cr_assert(stat(fuzz_dir(), &sb) == 0 && S_ISDIR(sb.st_mode),
              "no %s directory: run from the repository root or set TOEGW_FUZZ_DIR",
              fuzz_dir());
    snprintf(dir, sizeof(dir), "%s/regress/%s", fuzz_dir(), name);
    n += replay_dir(fn, name, dir, false);
    snprintf(dir, sizeof(dir), "%s/corpus/%s", fuzz_dir(), name);
    n += replay_dir(fn, name, dir, false);
    cr_expect_gt(n, 0, "fuzz_%s: no seeds in %s", name, dir);
}

static void quiet(void)
{
    fuzz_quiet_logs();
    signal(SIGPIPE, SIG_IGN);
}

TestSuite(fuzz_regress, .init = quiet, .timeout = 120);

Test(fuzz_regress, pdu) { replay_kept(fuzz_pdu, "pdu"); }
Test(fuzz_regress, session) { replay_kept(fuzz_session, "session"); }
Test(fuzz_regress, text) { replay_kept(fuzz_text, "text"); }
Test(fuzz_regress, chap) { replay_kept(fuzz_chap, "chap"); }
Test(fuzz_regress, scsi) { replay_kept(fuzz_scsi, "scsi"); }
Test(fuzz_regress, url) { replay_kept(fuzz_url, "url"); }
Test(fuzz_regress, nbd) { replay_kept(fuzz_nbd, "nbd"); }
Test(fuzz_regress, api) { replay_kept(fuzz_api, "api"); }
Test(fuzz_regress, bproto) { replay_kept(fuzz_bproto, "bproto"); }

Test(fuzz_regress, frame)
{
    if (!fuzz_frame)
        cr_skip_test("built without the emulated TOE (TOE_MK=): no frame parser to replay");
    replay_kept(fuzz_frame, "frame");
}

/* Known failures of code owned elsewhere: replayed on request, with their properties. */
Test(fuzz_regress, open_failures)
{
    static const struct { const char *name; fuzz_fn fn; } all[] = {
        { "pdu", fuzz_pdu }, { "session", fuzz_session }, { "text", fuzz_text },
        { "chap", fuzz_chap }, { "scsi", fuzz_scsi }, { "url", fuzz_url },
        { "nbd", fuzz_nbd }, { "api", fuzz_api }, { "bproto", fuzz_bproto },
        { "frame", NULL },
    };
    const char *env = getenv("TOEGW_FUZZ_OPEN");
    char dir[1024];
    int n = 0;

    if (!env || strcmp(env, "1") != 0) {
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
            DIR *d;
            struct dirent *e;
            snprintf(dir, sizeof(dir), "%s/regress/%s/open", fuzz_dir(), all[i].name);
            if (!(d = opendir(dir)))
                continue;
            while ((e = readdir(d)))
                n += e->d_name[0] != '.' && strcmp(e->d_name, "README") != 0;
            closedir(d);
        }
        if (n)
            cr_skip_test("%d known failures kept in %s/regress/<name>/open/ (code owned "
                         "elsewhere); TOEGW_FUZZ_OPEN=1 replays them", n, fuzz_dir());
        return;
    }
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        fuzz_fn fn = all[i].fn ? all[i].fn : fuzz_frame;
        if (!fn)
            continue;
        snprintf(dir, sizeof(dir), "%s/regress/%s/open", fuzz_dir(), all[i].name);
        replay_dir(fn, all[i].name, dir, true);
    }
}
