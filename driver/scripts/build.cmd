@echo off
rem build.cmd [Debug|Release] - builds agentsh.sys with Visual Studio 2022 + WDK (run from a
rem "Developer Command Prompt for VS 2022"). Output: driver\build\win\<Configuration>\
setlocal
set CONFIG=%1
if "%CONFIG%"=="" set CONFIG=Release
pushd "%~dp0.."
msbuild agentsh.vcxproj /nologo /m /p:Configuration=%CONFIG% /p:Platform=x64
set RC=%ERRORLEVEL%
popd
exit /b %RC%
