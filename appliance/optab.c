/*
 * optab.c - a command's option table as its parser and its --help (optab.h).
 */
#include "appliance/optab.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void app_optset_build(struct app_optset *s, const struct app_opt *tab, size_t n,
                      unsigned groups)
{
    size_t l = 1;

    memset(s, 0, sizeof(*s));
    s->shorts[0] = 'h';
    for (size_t i = 0; i < n && s->n < APP_OPTAB_MAX; i++) {
        if (!(tab[i].groups & groups))
            continue;
        s->longs[s->n] = (struct option){ tab[i].name, tab[i].has_arg, NULL, tab[i].val };
        s->by_long[s->n++] = &tab[i];
        if (tab[i].val > 0 && tab[i].val < 256 && tab[i].val != 'h') {
            s->shorts[l++] = (char)tab[i].val;
            if (tab[i].has_arg)
                s->shorts[l++] = ':';
        }
    }
    s->shorts[l] = '\0';
}

const struct app_opt *app_optset_next(const struct app_optset *s, int argc, char **argv,
                                      int *c)
{
    int idx = -1;

    *c = getopt_long(argc, argv, s->shorts, s->longs, &idx);
    if (*c == -1 || *c == '?')
        return NULL;
    if (idx >= 0)
        return s->by_long[idx];
    for (size_t i = 0; i < s->n; i++)
        if (s->by_long[i]->val == *c)
            return s->by_long[i];
    return NULL;
}

void app_opt_help(const char *usage, const struct app_opt *tab, size_t n, unsigned groups)
{
    printf("usage: %s\noptions:\n", usage);
    for (size_t i = 0; i < n; i++) {
        const struct app_opt *d = &tab[i];
        char left[64];
        bool letter = d->val > 0 && d->val < 256;
        if (!(d->groups & groups))
            continue;
        snprintf(left, sizeof(left), "%c%c%s--%s%s%s", letter ? '-' : ' ',
                 letter ? d->val : ' ', letter ? ", " : "  ", d->name, d->arg ? " " : "",
                 d->arg ? d->arg : "");
        printf("  %-34s %s%s%s%s\n", left, d->help, d->dflt ? " (default: " : "",
               d->dflt ? d->dflt : "", d->dflt ? ")" : "");
    }
}
