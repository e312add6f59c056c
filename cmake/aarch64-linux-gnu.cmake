# Cross-builds morsel for 64-bit Arm (aarch64) with Debian's cross compiler,
# and runs what it builds (tests, try-runs) under qemu-aarch64:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DMO_BUILD_TOOLS=OFF
#   cmake --build build-aarch64 -j2 && (cd build-aarch64 && ctest)
# Needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user and
# libcmocka-dev:arm64 (dpkg --add-architecture arm64); scripts/deps cross
# installs them.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(MO_CROSS_TRIPLE aarch64-linux-gnu)
include(${CMAKE_CURRENT_LIST_DIR}/cross-linux.cmake)
