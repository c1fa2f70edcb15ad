@echo off
rem sign-test.cmd [Debug|Release] - test-signs agentsh.sys and its catalog with a self-signed
rem certificate (development machines only; the target needs "bcdedit /set testsigning on").
rem Production drivers need an EV certificate and Microsoft attestation signing (see README).
setlocal
set CONFIG=%1
if "%CONFIG%"=="" set CONFIG=Release
set OUT=%~dp0..\build\win\%CONFIG%
set CERT=agentsh-test
powershell -NoProfile -Command ^
  "if (-not (Get-ChildItem Cert:\CurrentUser\My | Where-Object Subject -eq 'CN=%CERT%')) {" ^
  "  New-SelfSignedCertificate -Type CodeSigningCert -Subject 'CN=%CERT%' -CertStoreLocation Cert:\CurrentUser\My | Out-Null }"
if errorlevel 1 exit /b 1
signtool sign /fd sha256 /s My /n %CERT% "%OUT%\agentsh.sys" || exit /b 1
if exist "%OUT%\agentsh\agentsh.cat" signtool sign /fd sha256 /s My /n %CERT% "%OUT%\agentsh\agentsh.cat" || exit /b 1
echo Test-signed. On the target: bcdedit /set testsigning on, import CN=%CERT% into Trusted Root and Trusted Publishers.
