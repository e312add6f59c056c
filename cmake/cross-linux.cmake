# The part of every Debian cross toolchain file that does not depend on the
# processor: the caller sets CMAKE_SYSTEM_PROCESSOR and MO_CROSS_TRIPLE (the
# GNU triple, which is also Debian's multiarch directory name), and the
# qemu-user binary is qemu-${MO_CROSS_QEMU} (default: the processor name).
set(CMAKE_C_COMPILER ${MO_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${MO_CROSS_TRIPLE}-gcc)
if(NOT MO_CROSS_QEMU)
  set(MO_CROSS_QEMU ${CMAKE_SYSTEM_PROCESSOR})
endif()

# Libraries of the target come from two places: the cross libc in
# /usr/<triple> (linked against) and multiarch packages (libcmocka-dev:<arch>
# and the libc6:<arch> it pulls in) in /usr/lib/<triple>.
set(CMAKE_FIND_ROOT_PATH /usr/${MO_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_LIBRARY_ARCHITECTURE ${MO_CROSS_TRIPLE})
# Programs run under qemu-user. With the multiarch libc6:<arch> installed,
# qemu finds the target's dynamic loader and libraries in / by itself. It
# must not be given -L /usr/<triple> then: that prefix's loader (from
# libc6-<arch>-cross) would load the multiarch libc.so.6 found through
# /etc/ld.so.cache, and a loader and libc of different Debian revisions
# disagree on the layout of the loader's shared state (pthread_create spins
# forever on its stack cache list).
if(EXISTS /usr/lib/${MO_CROSS_TRIPLE}/libc.so.6 OR EXISTS /lib/${MO_CROSS_TRIPLE}/libc.so.6)
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-${MO_CROSS_QEMU})
else()
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-${MO_CROSS_QEMU};-L;/usr/${MO_CROSS_TRIPLE})
endif()

# pkg-config must describe the target's packages, not the build machine's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${MO_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
