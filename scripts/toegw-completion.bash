# bash completion for toegw: the commands, then the flags each takes, read from its own
# --help (so the completion is never out of date with the binary it completes).
# Installed as /usr/share/bash-completion/completions/toegw (make install, the image).
_toegw() {
    local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]:-}
    if [ "$COMP_CWORD" -eq 1 ]; then
        # shellcheck disable=SC2207 # words from toegw's own help
        COMPREPLY=($(compgen -W "$(toegw --help 2>&1 | awk '/^commands:/ {on=1; next}
            on && /^  [a-z]/ {print $1} on && /^$/ {on=0}')" -- "$cur"))
        return
    fi
    if [[ $cur == -* ]]; then
        # shellcheck disable=SC2207
        COMPREPLY=($(compgen -W "$(toegw "$cmd" --help 2>/dev/null |
            grep -oE '^ +(-[a-z], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+')" -- "$cur"))
        return
    fi
    # shellcheck disable=SC2207 # file names for the rest (token files, keys, directories)
    COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _toegw toegw
