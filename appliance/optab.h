/*
 * optab.h - a command's options as one table that is both its parser (getopt_long over the
 * entries the command takes) and its --help (each entry with its value and default), so
 * that a command accepts exactly the flags its help lists.
 */
#ifndef TOEGW_APPLIANCE_OPTAB_H
#define TOEGW_APPLIANCE_OPTAB_H

#include <getopt.h>
#include <stddef.h>

#define APP_OPTAB_MAX 64

struct app_opt {
    const char *name;      /* the long name, without "--" */
    int has_arg;           /* 0 or 1 */
    int val;               /* what getopt returns: a letter (also the short option), >= 256,
                              or 0 (the caller goes by the entry) */
    unsigned groups;       /* the commands that take it: a bit each, the caller's */
    const char *arg;       /* the value's name in --help; NULL: a switch */
    const char *dflt;      /* the default in --help; NULL: none */
    const char *help;
};

/* The options of one command, ready for getopt_long. */
struct app_optset {
    struct option longs[APP_OPTAB_MAX + 1];
    const struct app_opt *by_long[APP_OPTAB_MAX];
    char shorts[2 * APP_OPTAB_MAX + 2];
    size_t n;
};

/* The entries of tab[0..n) in groups (at most APP_OPTAB_MAX); 'h' is always a short one. */
void app_optset_build(struct app_optset *s, const struct app_opt *tab, size_t n,
                      unsigned groups);

/*
 * The next option of argv (getopt_long; optind/opterr set by the caller): its getopt value
 * in *c (-1 at the end, '?' for one the command does not take) and its entry (NULL for
 * '?' and at the end).
 */
const struct app_opt *app_optset_next(const struct app_optset *s, int argc, char **argv,
                                      int *c);

/* --help: "usage: USAGE", then every entry in groups with its value, help and default. */
void app_opt_help(const char *usage, const struct app_opt *tab, size_t n, unsigned groups);

#endif
