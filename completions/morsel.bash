# bash completion for morsel(1).                       -*- shell-script -*-
# Installed by cmake --install as share/bash-completion/completions/morsel.
# The commands and their options follow 'morsel COMMAND --help'; a new
# command adds a line to each case below (the test cli-docs checks that
# every command and long option is here).

_morsel()
{
    local cur prev cword
    local -a words
    if declare -F _init_completion >/dev/null 2>&1; then
        _init_completion || return
    else
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
    fi

    if ((cword == 1)); then
        COMPREPLY=($(compgen -W "lag factorial walk serve demo --help --version" -- "$cur"))
        return
    fi

    local cmd=${words[1]} opts args
    case $cmd in
    lag)
        opts="--period --report --count --block --watchdog --slack --json --help --version"
        args="-p --period -r --report -n --count -b --block -w --watchdog -s --slack"
        ;;
    factorial)
        opts="--hex --output --no-progress --threads --offload-all --naive --steps --help --version"
        args="-o --output --threads --steps"
        ;;
    walk)
        opts="--null --parallel --max-depth --min-depth --type --name --iname --exclude --xdev
              --follow --fail-fast --count --stats --json --no-progress --help --version"
        args="--max-depth --min-depth -t --type --name --iname --exclude"
        ;;
    serve)
        opts="--listen --unix --max-connections --root --grace --threads --heartbeat --watchdog
              --blocking --steps --help --version"
        args="--listen --max-connections --grace --threads --heartbeat --watchdog --steps"
        ;;
    demo)
        opts="--quick --duration --jobs --json --svg --p99-limit --no-progress --help --version"
        args="--duration --jobs --p99-limit"
        ;;
    *)
        return
        ;;
    esac

    case $prev in
    -t | --type)
        [[ $cmd == walk ]] && COMPREPLY=($(compgen -W "f d l p s b c" -- "$cur"))
        return
        ;;
    -o | --output | --unix | --svg)
        [[ $cmd == factorial || $cmd == serve || $cmd == demo ]] && COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --root)
        COMPREPLY=($(compgen -d -- "$cur"))
        return
        ;;
    --steps)
        [[ $cmd == factorial ]] && COMPREPLY=($(compgen -W "auto" -- "$cur"))
        return
        ;;
    esac
    local a
    for a in $args; do
        [[ $prev == "$a" ]] && return # a number or a glob: nothing to offer
    done

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ $cmd == walk ]]; then
        COMPREPLY=($(compgen -d -- "$cur"))
    fi
}
complete -F _morsel morsel
