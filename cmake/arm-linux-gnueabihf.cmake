# Cross-builds morsel for 32-bit Arm (armhf) with Debian's cross compiler and
# runs what it builds under qemu-arm. There is no assembly context switch
# for this processor: coroutines use the ucontext fallback (coro_ctx.h).
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/arm-linux-gnueabihf.cmake -DMO_BUILD_TOOLS=OFF
# Needs gcc-arm-linux-gnueabihf, libc6-dev-armhf-cross, qemu-user and
# libcmocka-dev:armhf (dpkg --add-architecture armhf); scripts/deps cross
# installs them.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(MO_CROSS_TRIPLE arm-linux-gnueabihf)
set(MO_CROSS_QEMU arm)
include(${CMAKE_CURRENT_LIST_DIR}/cross-linux.cmake)
