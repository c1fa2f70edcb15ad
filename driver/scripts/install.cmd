@echo off
rem install.cmd [Debug|Release] - installs and starts agentsh.sys (run as Administrator).
setlocal
set CONFIG=%1
if "%CONFIG%"=="" set CONFIG=Release
set PKG=%~dp0..\build\win\%CONFIG%\agentsh
if not exist "%PKG%\agentsh.inf" set PKG=%~dp0..\build\win\%CONFIG%
pnputil /add-driver "%PKG%\agentsh.inf" /install || exit /b 1
fltmc load agentsh || exit /b 1
fltmc filters | findstr /i agentsh
