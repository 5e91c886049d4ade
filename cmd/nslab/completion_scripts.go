package main

// This file: the completion scripts `nslab completion SHELL` prints. Each
// asks `nslab __complete` (completion.go) for the candidates and adds
// files or directories when its last line says so.

var completionScripts = map[string]string{
	"bash": bashCompletion,
	"zsh":  zshCompletion,
	"fish": fishCompletion,
}

// The words are split from the line up to the cursor, on white space, not
// by COMP_WORDS: bash splits COMP_WORDS at ':' and '=' too, which would
// cut NODE:IFACE in three. Candidates that hold a ':' lose what comes
// before the last ':' of the word, as bash-completion's
// __ltrim_colon_completions does, since bash replaces only that part.
const bashCompletion = `# bash completion for nslab                              -*- shell-script -*-
# Load it with: source <(nslab completion bash)
# or for every shell: nslab completion bash > /etc/bash_completion.d/nslab

_nslab_complete() {
    local line="${COMP_LINE:0:COMP_POINT}"
    local -a words
    read -r -a words <<< "$line"
    [[ $line =~ [[:space:]]$ ]] && words+=("")
    (( ${#words[@]} < 2 )) && words+=("")
    local cur="${words[${#words[@]}-1]}"
    local prog="${words[0]/#\~/$HOME}"
    local out
    out=$("$prog" __complete "${words[@]:1}" 2>/dev/null) || return 0
    [[ -n $out ]] || return 0
    local -a lines
    mapfile -t lines <<< "$out"
    local directive="${lines[${#lines[@]}-1]}"
    unset 'lines[${#lines[@]}-1]'
    COMPREPLY=()
    local l
    for l in "${lines[@]}"; do
        COMPREPLY+=("${l%%$'\t'*}")
    done
    case "$directive" in
    ":files "*)
        local ext
        for ext in ${directive#:files }; do
            mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -X "!*.$ext" -- "$cur")
        done
        mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$cur")
        compopt -o filenames 2>/dev/null
        ;;
    ":files")
        mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$cur")
        compopt -o filenames 2>/dev/null
        ;;
    ":dirs")
        mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$cur")
        compopt -o filenames 2>/dev/null
        ;;
    ":commands")
        mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -c -- "$cur" | sort -u)
        ;;
    esac
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local colon="${cur%"${cur##*:}"}"
        local i
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]="${COMPREPLY[i]#"$colon"}"
        done
    fi
    return 0
}
complete -F _nslab_complete nslab
`

const zshCompletion = `#compdef nslab
# zsh completion for nslab. Load it with: source <(nslab completion zsh)
# (after compinit), or for good: nslab completion zsh > "${fpath[1]}/_nslab"

_nslab() {
    local prog="${words[1]/#\~/$HOME}"
    local out
    out=$("$prog" __complete "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    [[ -n $out ]] || return 1
    local -a lines specs
    lines=("${(@f)out}")
    local directive="${lines[-1]}"
    lines[-1]=()
    local line value desc
    for line in "${lines[@]}"; do
        value="${line%%$'\t'*}"
        desc=""
        [[ $line == *$'\t'* ]] && desc="${line#*$'\t'}"
        value="${value//:/\\:}"
        if [[ -n $desc ]]; then
            specs+=("$value:$desc")
        else
            specs+=("$value")
        fi
    done
    local ret=1
    (( ${#specs} )) && _describe -t values 'nslab' specs && ret=0
    case "$directive" in
    ":files "*)
        local -a exts
        exts=(${=directive#:files })
        # One extension alone: "*.(toml)" would read as glob qualifiers.
        local pat="*.${exts[1]}"
        (( ${#exts} > 1 )) && pat="*.(${(j:|:)exts})"
        _files -g "$pat" && ret=0
        ;;
    ":files")
        _files && ret=0
        ;;
    ":dirs")
        _files -/ && ret=0
        ;;
    ":commands")
        _command_names -e && ret=0
        ;;
    esac
    return ret
}

if [[ "$funcstack[1]" == "_nslab" ]]; then
    _nslab "$@"
else
    compdef _nslab nslab
fi
`

const fishCompletion = `# fish completion for nslab. Load it with: nslab completion fish | source
# or for good: nslab completion fish > ~/.config/fish/completions/nslab.fish

function __nslab_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l prog (string replace -r '^~' $HOME -- $tokens[1])
    set -l out ($prog __complete $tokens[2..-1] $cur 2>/dev/null)
    or return
    test (count $out) -gt 0
    or return
    set -l directive $out[-1]
    set -e out[-1]
    printf '%s\n' $out
    switch $directive
        case ':files *'
            set -l exts (string split ' ' -- (string replace ':files ' '' -- $directive))
            for f in $cur*
                if test -d $f
                    echo $f/
                else
                    for ext in $exts
                        string match -q -- "*.$ext" $f; and echo $f
                    end
                end
            end
        case ':files'
            __fish_complete_path $cur
        case ':dirs'
            __fish_complete_directories $cur
        case ':commands'
            complete -C "$cur"
    end
end

complete -c nslab -f -a '(__nslab_complete)'
`
