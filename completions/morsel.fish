# fish completion for morsel(1). Installed by cmake --install as
# share/fish/vendor_completions.d/morsel.fish. The commands and their
# options follow 'morsel COMMAND --help'; a new command adds its lines
# here (the test cli-docs checks that every command and long option is).

set -l commands lag factorial walk serve demo
complete -c morsel -f
complete -c morsel -n "not __fish_seen_subcommand_from $commands" -s h -l help -d 'Show the help'
complete -c morsel -n "not __fish_seen_subcommand_from $commands" -s V -l version -d 'Show the version'
complete -c morsel -n "not __fish_seen_subcommand_from $commands" -a lag -d "Watch the loop's timer lateness"
complete -c morsel -n "not __fish_seen_subcommand_from $commands" -a factorial -d 'Print N! without blocking the loop'
complete -c morsel -n "not __fish_seen_subcommand_from $commands" -a walk -d 'Print the paths under directories, as find does'
complete -c morsel -n "not __fish_seen_subcommand_from $commands" -a serve -d 'A line-protocol server: ping, factorial, walk, stats'
complete -c morsel -n "not __fish_seen_subcommand_from $commands" -a demo -d 'A responsive server against a blocking one, in figures'
complete -c morsel -n "__fish_seen_subcommand_from $commands" -s h -l help -d 'Show the help'
complete -c morsel -n "__fish_seen_subcommand_from $commands" -s V -l version -d 'Show the version'

# lag
set -l c '__fish_seen_subcommand_from lag'
complete -c morsel -n $c -s p -l period -x -d "The heartbeat's period (ms)"
complete -c morsel -n $c -s r -l report -x -d 'Time between reports (ms)'
complete -c morsel -n $c -s n -l count -x -d 'Stop after N reports'
complete -c morsel -n $c -s b -l block -x -d 'Hold the loop once per report (ms)'
complete -c morsel -n $c -s w -l watchdog -x -d 'Report callbacks holding the loop longer (ms)'
complete -c morsel -n $c -s s -l slack -x -d 'Sleep up to this past a deadline (us)'
complete -c morsel -n $c -l json -d 'Each report as one JSON object'

# factorial
set -l c '__fish_seen_subcommand_from factorial'
complete -c morsel -n $c -l hex -d 'Lowercase hexadecimal'
complete -c morsel -n $c -s o -l output -r -F -d 'Write to a file'
complete -c morsel -n $c -l no-progress -d 'No progress line'
complete -c morsel -n $c -l threads -x -d 'Worker threads'
complete -c morsel -n $c -l offload-all -d 'Small pieces to the workers too'
complete -c morsel -n $c -l naive -d "The seed's optFactorial"
complete -c morsel -n $c -l steps -x -a auto -d 'Multiplications per chunk (--naive)'

# walk
set -l c '__fish_seen_subcommand_from walk'
complete -c morsel -n $c -a '(__fish_complete_directories)'
complete -c morsel -n $c -s 0 -l null -d 'End each path with NUL'
complete -c morsel -n $c -s p -l parallel -d 'Read directories on the worker pool'
complete -c morsel -n $c -l max-depth -x -d 'Descend at most N levels'
complete -c morsel -n $c -l min-depth -x -d 'Print nothing above level N'
complete -c morsel -n $c -s t -l type -x -a 'f\tfile d\tdirectory l\tlink p\tFIFO s\tsocket b\t"block device" c\t"character device"' -d 'Only paths of this type'
complete -c morsel -n $c -l name -x -d 'Only names matching a glob'
complete -c morsel -n $c -l iname -x -d 'Only names matching a glob, ignoring case'
complete -c morsel -n $c -l exclude -x -d 'Neither print nor enter names matching'
complete -c morsel -n $c -l xdev -d "Stay on DIR's file system"
complete -c morsel -n $c -s L -l follow -d 'Follow symbolic links'
complete -c morsel -n $c -l fail-fast -d 'Stop at the first error'
complete -c morsel -n $c -s c -l count -d 'Print only the totals'
complete -c morsel -n $c -l stats -d "Print the loop's statistics"
complete -c morsel -n $c -l json -d '--count and --stats as JSON'
complete -c morsel -n $c -l no-progress -d 'No progress line'

# serve
set -l c '__fish_seen_subcommand_from serve'
complete -c morsel -n $c -l listen -x -d 'TCP address (host:port)'
complete -c morsel -n $c -l unix -r -F -d 'Listen on a Unix socket too'
complete -c morsel -n $c -l max-connections -x -d 'Refuse connections beyond N'
complete -c morsel -n $c -l root -x -a '(__fish_complete_directories)' -d 'Walk requests stay below DIR'
complete -c morsel -n $c -l grace -x -d 'Let answers finish this long after a signal (s)'
complete -c morsel -n $c -l threads -x -d 'Factorial worker threads'
complete -c morsel -n $c -l heartbeat -x -d "The timer whose lateness stats reports (ms)"
complete -c morsel -n $c -l watchdog -x -d 'Report callbacks holding the loop longer (ms)'
complete -c morsel -n $c -l blocking -d 'Compute each request in one callback'
complete -c morsel -n $c -l steps -x -d "Factorial as the seed's optFactorial"

# demo
set -l c '__fish_seen_subcommand_from demo'
complete -c morsel -n $c -l quick -d 'Small work, a run of seconds'
complete -c morsel -n $c -l duration -x -d 'Pings go on this long in each loaded phase (s)'
complete -c morsel -n $c -l jobs -x -d 'Factorial and walk requests per loaded phase'
complete -c morsel -n $c -l json -d 'The figures as JSON'
complete -c morsel -n $c -l svg -r -F -d 'Write a chart of the round trips (SVG)'
complete -c morsel -n $c -l p99-limit -x -d 'The ping p99 phase 2 must stay under (ms)'
complete -c morsel -n $c -l no-progress -d 'No live panel or progress lines'
